//! The access-log files a bill reads: plain or gzip (told by the content, so
//! rotated `access.log.2.gz` and renamed files alike), `-` for stdin, one line
//! at a time and never more than [`MAX_LINE`] bytes of one held.

use flate2::read::MultiGzDecoder;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::Path;

/// The longest line read; a longer one is skipped (and counted), not buffered.
pub const MAX_LINE: usize = 1 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens `path` (`-`: stdin) for reading, unpacked when it is gzip.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path)?)
    };
    unpacked(raw)
}

/// `r`, unpacked when its first bytes are gzip's magic number (every member of
/// a multi-member file, as `cat a.gz b.gz` makes).
pub fn unpacked(mut r: Box<dyn Read>) -> io::Result<Box<dyn BufRead>> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let whole = Cursor::new(head[..n].to_vec()).chain(r);
    Ok(if head[..n] == GZIP_MAGIC {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            MultiGzDecoder::new(whole),
        ))
    } else {
        Box::new(BufReader::with_capacity(64 * 1024, whole))
    })
}

/// One line of input.
pub enum Line<'a> {
    /// without its line break (`\n` or `\r\n`)
    Text(&'a [u8]),
    /// longer than [`MAX_LINE`]: its bytes were skipped
    TooLong,
}

/// Calls `f` with each line of `r` (a last line without a line break too).
pub fn each_line(mut r: impl BufRead, mut f: impl FnMut(Line<'_>)) -> io::Result<()> {
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let (chunk, ended) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = chunk.len() + usize::from(ended);
        r.consume(used);
        if ended {
            emit(&mut line, &mut too_long, &mut f);
        }
    }
    if too_long || !line.is_empty() {
        emit(&mut line, &mut too_long, &mut f);
    }
    Ok(())
}

fn emit(line: &mut Vec<u8>, too_long: &mut bool, f: &mut impl FnMut(Line<'_>)) {
    if std::mem::take(too_long) {
        f(Line::TooLong);
    } else {
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        f(Line::Text(text));
    }
    line.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn lines(r: impl BufRead) -> Vec<String> {
        let mut out = Vec::new();
        each_line(r, |l| {
            out.push(match l {
                Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Line::TooLong => "<too long>".into(),
            })
        })
        .unwrap();
        out
    }

    fn gz(text: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn lines_are_split_and_the_last_needs_no_line_break() {
        let r = BufReader::new(&b"a\r\nbb\n\nccc"[..]);
        assert_eq!(lines(r), ["a", "bb", "", "ccc"]);
        assert!(lines(BufReader::new(&b""[..])).is_empty());
    }

    #[test]
    fn a_line_over_the_limit_is_skipped_whatever_the_buffer() {
        let mut text = b"first\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
        text.extend(b"\nlast\n");
        text.extend(std::iter::repeat_n(b'y', MAX_LINE));
        // small reads: the long line arrives in many pieces
        let r = BufReader::with_capacity(4096, &text[..]);
        assert_eq!(
            lines(r),
            ["first", "<too long>", "last", &"y".repeat(MAX_LINE)]
        );
        let mut cut = b"ok\n".to_vec();
        cut.extend(std::iter::repeat_n(b'z', MAX_LINE + 5));
        assert_eq!(lines(BufReader::new(&cut[..])), ["ok", "<too long>"]);
    }

    #[test]
    fn gzip_is_told_by_its_content() {
        let mut two = gz(b"one\ntwo\n");
        two.extend(gz(b"three\n")); // a second member, as `cat a.gz b.gz` writes
        let r = unpacked(Box::new(Cursor::new(two))).unwrap();
        assert_eq!(lines(r), ["one", "two", "three"]);
        let plain = unpacked(Box::new(Cursor::new(b"plain\n".to_vec()))).unwrap();
        assert_eq!(lines(plain), ["plain"]);
        // one byte, and the magic's first byte alone, are plain text
        let one = unpacked(Box::new(Cursor::new(vec![0x1f]))).unwrap();
        assert_eq!(lines(one).len(), 1);
    }

    #[test]
    fn cut_gzip_is_an_error() {
        let mut data = gz(b"one\ntwo\nthree\n");
        data.truncate(data.len() - 6);
        let r = unpacked(Box::new(Cursor::new(data))).unwrap();
        assert!(each_line(r, |_| {}).is_err());
    }
}
