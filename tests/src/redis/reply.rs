//! `redis-cli --no-raw` output read back as values ([`Reply`], [`parse`]): the
//! way to see exactly what a Lua script or a command answered, bulk strings
//! with newlines and binary bytes included (raw output cannot tell an array of
//! two strings from one string holding a newline).

/// One reply as `redis-cli --no-raw` prints it (flat arrays only, which is
/// all these scripts answer).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Int(i64),
    Str(String),
    Nil,
    Err(String),
    Arr(Vec<Reply>),
}

/// Undoes redis-cli's quoting of a bulk string (`sdscatrepr`): `\n`, `\r`,
/// `\t`, `\a`, `\b`, `\\`, `\"` and `\xHH`.
pub fn unquote(q: &str) -> String {
    let mut out = Vec::with_capacity(q.len());
    let mut bytes = q.bytes();
    while let Some(c) = bytes.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'a') => out.push(7),
            Some(b'b') => out.push(8),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).expect("\\x escape is ASCII");
                out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("\\x{hex}: {e}")));
            }
            Some(other) => out.push(other),
            None => panic!("dangling backslash in {q:?}"),
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| panic!("{q:?} is not UTF-8: {e}"))
}

pub fn parse_scalar(s: &str) -> Reply {
    if let Some(n) = s.strip_prefix("(integer) ") {
        Reply::Int(n.parse().unwrap_or_else(|e| panic!("integer {n:?}: {e}")))
    } else if let Some(e) = s.strip_prefix("(error) ") {
        Reply::Err(e.to_string())
    } else if s == "(nil)" {
        Reply::Nil
    } else if let Some(q) = s.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        Reply::Str(unquote(q))
    } else {
        panic!("unexpected redis-cli output {s:?}")
    }
}

/// Parses `redis-cli --no-raw` output: a scalar, or array lines `N) value`
/// (right-aligned once there are 10 or more).
pub fn parse(out: &str) -> Reply {
    if out == "(empty array)" {
        return Reply::Arr(Vec::new());
    }
    let mut items = Vec::new();
    for line in out.lines() {
        let line = line.trim_start();
        match line.split_once(") ") {
            Some((n, v)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                items.push(parse_scalar(v));
            }
            _ if out.lines().count() == 1 => return parse_scalar(line),
            _ => panic!("unexpected redis-cli output line {line:?} in:\n{out}"),
        }
    }
    Reply::Arr(items)
}

pub fn ints(items: &[Reply]) -> Vec<i64> {
    items
        .iter()
        .map(|i| match i {
            Reply::Int(n) => *n,
            other => panic!("expected integers, got {other:?} in {items:?}"),
        })
        .collect()
}

impl Reply {
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Arr(items) => items,
            other => panic!("expected an array, got {other:?}"),
        }
    }

    pub fn ints(&self) -> Vec<i64> {
        ints(self.items())
    }

    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    pub fn err(&self) -> &str {
        match self {
            Reply::Err(e) => e,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }
}
