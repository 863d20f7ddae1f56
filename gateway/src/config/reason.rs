//! Why a config value could not be read, in words that never carry the value
//! (it may be a secret): the key's expected type or allowed names, and the kind
//! of value found. serde's own messages quote the value; these replace them.

use super::tree::NodeId;
use serde::de::{self, Expected, Unexpected};
use std::fmt;

/// What went wrong, without the value that was written.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    /// the written value is of another type (`found` names the type only)
    WrongType {
        expected: String,
        found: &'static str,
    },
    /// the right type, but not a value the key accepts (e.g. out of range)
    BadValue {
        expected: String,
        found: &'static str,
    },
    Length {
        expected: String,
        len: usize,
    },
    UnknownVariant {
        expected: &'static [&'static str],
    },
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    DuplicateField(&'static str),
    /// from a type's own check (e.g. `${NAME}` interpolation); such messages are
    /// written in this repository and name no value
    Custom(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    /// the node it happened at: a key for unknown and duplicate keys, the mapping
    /// for a missing one; None until a deserializer attaches it
    pub node: Option<NodeId>,
}

impl Error {
    pub(super) fn new(kind: ErrorKind) -> Error {
        Error { kind, node: None }
    }

    pub(super) fn at(mut self, id: NodeId) -> Error {
        self.node.get_or_insert(id);
        self
    }
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`" (as serde words it).
pub(super) fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_string(),
        [a] => format!("`{a}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => {
            let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("one of {}", list.join(", "))
        }
    }
}

/// serde's names for what a visitor expects, in the words of a config file.
fn human(expected: &str) -> String {
    match expected {
        "a sequence" => "a list",
        "a map" => "a mapping",
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "an integer from 0 to 4294967295",
        "u64" | "usize" | "u128" => "an integer of 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "unit" => "nothing",
        s if s.starts_with("struct ") => "a mapping",
        s => s,
    }
    .to_string()
}

/// The kind of a value serde was handed, never the value itself.
fn kind_of(u: &Unexpected<'_>) -> &'static str {
    match u {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Signed(v) if *v < 0 => "a negative integer",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "nothing",
        Unexpected::Option => "an optional value",
        Unexpected::NewtypeStruct => "a value",
        Unexpected::Seq => "a list",
        Unexpected::Map => "a mapping",
        Unexpected::Enum
        | Unexpected::UnitVariant
        | Unexpected::NewtypeVariant
        | Unexpected::TupleVariant
        | Unexpected::StructVariant => "an enum value",
        Unexpected::Other(_) => "a value of another kind",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::WrongType { expected, found } => {
                let mut expected = human(expected);
                if expected == "a list" && *found != "a mapping" {
                    // the usual slip: one item written without brackets
                    expected.push_str(" like [a, b]");
                }
                write!(f, "expected {expected}, found {found}")
            }
            ErrorKind::BadValue { expected, found } => {
                let what = match *found {
                    "an integer" => " out of range",
                    "a negative integer" => "",
                    _ => " that is not accepted",
                };
                write!(f, "expected {}, found {found}{what}", human(expected))
            }
            ErrorKind::Length { expected, len } => {
                write!(f, "expected {}, found {len} items", human(expected))
            }
            ErrorKind::UnknownVariant { expected } => {
                write!(f, "not a known value: expected {}", one_of(expected))
            }
            ErrorKind::UnknownField {
                field,
                expected: [],
            } => {
                write!(f, "unknown field `{field}`, there are no fields")
            }
            ErrorKind::UnknownField { field, expected } => {
                write!(f, "unknown field `{field}`, expected {}", one_of(expected))
            }
            ErrorKind::MissingField(_) => write!(f, "required, but not set"),
            ErrorKind::DuplicateField(_) => write!(f, "set twice in the same mapping"),
            ErrorKind::Custom(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(ErrorKind::Custom(msg.to_string()))
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::new(ErrorKind::WrongType {
            expected: exp.to_string(),
            found: kind_of(&unexp),
        })
    }
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::new(ErrorKind::BadValue {
            expected: exp.to_string(),
            found: kind_of(&unexp),
        })
    }
    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Error::new(ErrorKind::Length {
            expected: exp.to_string(),
            len,
        })
    }
    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Error::new(ErrorKind::UnknownVariant { expected })
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Error::new(ErrorKind::UnknownField {
            field: field.to_string(),
            expected,
        })
    }
    fn missing_field(field: &'static str) -> Self {
        Error::new(ErrorKind::MissingField(field))
    }
    fn duplicate_field(field: &'static str) -> Self {
        Error::new(ErrorKind::DuplicateField(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::Error as _;

    const SECRET: &str = "sk-live-SECRET123";

    #[test]
    fn no_message_quotes_the_value() {
        let all = [
            Error::invalid_type(Unexpected::Str(SECRET), &"a sequence"),
            Error::invalid_value(Unexpected::Str(SECRET), &"a character"),
            Error::invalid_type(Unexpected::Bytes(SECRET.as_bytes()), &"a string"),
            Error::invalid_type(Unexpected::Other(SECRET), &"a string"),
            Error::unknown_variant(SECRET, &["grpc", "http"]),
            Error::invalid_length(3, &"a tuple of 2 elements"),
        ];
        for e in all {
            assert!(!e.to_string().contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn messages_say_what_was_expected_and_what_kind_was_found() {
        let said = |e: Error| e.to_string();
        assert_eq!(
            said(Error::invalid_type(Unexpected::Str(SECRET), &"a sequence")),
            "expected a list like [a, b], found a string"
        );
        assert_eq!(
            said(Error::invalid_type(Unexpected::Map, &"a sequence")),
            "expected a list, found a mapping"
        );
        assert_eq!(
            said(Error::invalid_value(Unexpected::Unsigned(70_000), &"u16")),
            "expected an integer from 0 to 65535, found an integer out of range"
        );
        assert_eq!(
            said(Error::invalid_value(Unexpected::Signed(-1), &"u64")),
            "expected an integer of 0 or more, found a negative integer"
        );
        assert_eq!(
            said(Error::invalid_type(
                Unexpected::Bool(true),
                &"struct TlsConfig"
            )),
            "expected a mapping, found a boolean"
        );
        assert_eq!(
            said(Error::unknown_variant(SECRET, &["grpc", "http"])),
            "not a known value: expected `grpc` or `http`"
        );
        // key names are not values: an unknown one is named, as serde names it
        assert_eq!(
            said(Error::unknown_field(
                "lisen",
                &["listen", "admin_listen", "tls"]
            )),
            "unknown field `lisen`, expected one of `listen`, `admin_listen`, `tls`"
        );
        assert_eq!(said(Error::missing_field("id")), "required, but not set");
    }
}
