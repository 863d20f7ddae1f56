//! Byte-level reading of OpenAI stream chunks: the text size and finish reason
//! of a plain delta chunk without a JSON parse.

use memchr::memmem::Finder;
use std::sync::LazyLock;

/// Substring searchers built once (building one costs more than a search).
struct Finders {
    choices: Finder<'static>,
    usage: Finder<'static>,
    finish: Finder<'static>,
    text: [Finder<'static>; 4],
}

static FINDERS: LazyLock<Finders> = LazyLock::new(|| Finders {
    choices: Finder::new(b"\"choices\""),
    usage: Finder::new(b"\"usage\""),
    finish: Finder::new(b"\"finish_reason\":"),
    text: [
        Finder::new(b"\"content\":"),
        Finder::new(b"\"reasoning_content\":"),
        Finder::new(b"\"text\":"),
        Finder::new(b"\"arguments\":"),
    ],
});

/// A chat/completions chunk without usage: metered by a byte scan instead of a parse.
pub(crate) fn is_plain_delta(data: &[u8]) -> bool {
    let f = &*FINDERS;
    if f.choices.find(data).is_none() {
        return false; // e.g. Responses API events
    }
    match f.usage.find(data) {
        None => true,
        Some(i) => {
            let rest = &data[i + 7..];
            let rest = rest
                .iter()
                .position(|&b| b != b':' && b != b' ')
                .map_or(&[][..], |p| &rest[p..]);
            rest.starts_with(b"null")
        }
    }
}

/// Bytes of generated text in a chunk: the string values of `content`,
/// `reasoning_content`, `text` and `arguments` (escapes counted as one byte).
pub(crate) fn text_bytes(data: &[u8]) -> usize {
    let mut total = 0;
    for key in &FINDERS.text {
        for start in key.find_iter(data) {
            if let Some(value) = string_after(&data[start + key.needle().len()..]) {
                total += string_len(value);
            }
        }
    }
    total
}

/// Length of a JSON string body up to its closing quote.
fn string_len(s: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => break,
            b'\\' => i += 2,
            _ => i += 1,
        }
        n += 1;
    }
    n
}

pub(crate) fn finish_reason(data: &[u8]) -> Option<String> {
    let key = &FINDERS.finish;
    let value = string_after(&data[key.find(data)? + key.needle().len()..])?;
    let len = memchr::memchr(b'"', value)?;
    std::str::from_utf8(&value[..len]).ok().map(str::to_string)
}

/// After a key's colon: the body of the string value, if the value is a string.
fn string_after(rest: &[u8]) -> Option<&[u8]> {
    let i = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    (rest[i] == b'"').then(|| &rest[i + 1..])
}
