//! The cursor of `GET /admin/usage`: where a listing of quota windows stopped
//! (a hash tag, and in it a fixed-subject window or an index entry), handed to
//! clients as opaque hex and checked when it comes back.

use crate::quota::store::After;

/// The longest cursor accepted (hex of a tag and a window key).
const MAX_CURSOR: usize = 4096;

/// Where in a tag a listing stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// the fixed-subject windows, from this one on
    Fixed(usize),
    /// the window index, after this entry (None: from its start)
    Index(Option<After>),
}

/// Where the next page starts: opaque to clients (hex of `tag\nf\n<n>` or
/// `tag\ni\n<after>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cursor {
    pub tag: String,
    pub phase: Phase,
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Cursor {
    pub fn encode(&self) -> String {
        let phase = match &self.phase {
            Phase::Fixed(n) => format!("f\n{n}"),
            Phase::Index(None) => "i\n".to_string(),
            Phase::Index(Some(a)) => format!("i\n{}", a.encode()),
        };
        to_hex(format!("{}\n{phase}", self.tag).as_bytes())
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > MAX_CURSOR {
            return None;
        }
        let text = String::from_utf8(from_hex(s)?).ok()?;
        let mut parts = text.splitn(3, '\n');
        let (tag, kind, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let phase = match (kind, rest) {
            ("f", n) => Phase::Fixed(n.parse().ok()?),
            ("i", "") => Phase::Index(None),
            ("i", a) => Phase::Index(Some(After::decode(a)?)),
            _ => return None,
        };
        Some(Cursor {
            tag: tag.to_string(),
            phase,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let cases = [
            Cursor {
                tag: "r:chat".into(),
                phase: Phase::Fixed(7),
            },
            Cursor {
                tag: "t:acme".into(),
                phase: Phase::Index(None),
            },
            Cursor {
                tag: "r:odd:name".into(),
                phase: Phase::Index(Some(After {
                    ends: 1_700_000_000_123,
                    key: "{r:odd:name}:q:r:odd:name:per-ip:::1".into(),
                })),
            },
        ];
        for c in cases {
            let s = c.encode();
            assert!(s.bytes().all(|b| b.is_ascii_hexdigit()), "{s}");
            assert_eq!(Cursor::decode(&s), Some(c));
        }
        for bad in [
            "",
            "zz",
            "abc",
            &to_hex(b"t:acme\nx\n1"),
            &to_hex(b"t:acme\nf\n-1"),
            &to_hex(b"t\ni\nnot-a-number:k"),
            &"0".repeat(MAX_CURSOR + 2),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
