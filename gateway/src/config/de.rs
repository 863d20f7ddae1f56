//! A serde deserializer over the config tree. It reads scalars the way
//! `serde_yaml_ng` does, and its errors are structured and never carry a value:
//! "expected a list, found a string", tied to the node where they happened.
//! A placeholder node reads as the "zero" of whatever type is asked (0, "", false,
//! empty list, a struct of zeros, an enum's first variant), so a removed value
//! cannot make its parent fail in turn.

use super::tree::{Kind, NodeId, Tree};
use serde::de::{
    self, DeserializeSeed, EnumAccess, Expected, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
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
    fn new(kind: ErrorKind) -> Error {
        Error { kind, node: None }
    }

    fn at(mut self, id: NodeId) -> Error {
        self.node.get_or_insert(id);
        self
    }
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`" (as serde words it).
fn one_of(names: &[&str]) -> String {
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

/// A plain scalar read as YAML reads it (by `serde_yaml_ng`, the parser the gateway
/// runs on, so both agree on what `1`, `0x1f`, `~` or `True` are).
enum Plain<'a> {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(&'a str),
}

fn resolve(text: &str) -> Plain<'_> {
    use serde_yaml_ng::Value;
    // the common cases without a parser: names, words, plain decimal numbers
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        _ => {}
    }
    let decimal = text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    if let (true, Ok(u)) = (decimal, text.parse::<u64>()) {
        return Plain::Unsigned(u);
    }
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return Plain::Str(text);
    }
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Null) => Plain::Null,
        Ok(Value::Bool(b)) => Plain::Bool(b),
        Ok(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Plain::Unsigned(u),
            (None, Some(i), _) => Plain::Signed(i),
            (None, None, Some(x)) => Plain::Float(x),
            _ => Plain::Str(text),
        },
        _ => Plain::Str(text),
    }
}

/// Reads one node of the tree.
#[derive(Clone, Copy)]
pub struct De<'t> {
    tree: &'t Tree,
    id: NodeId,
}

impl<'t> De<'t> {
    pub fn new(tree: &'t Tree, id: NodeId) -> De<'t> {
        De { tree, id }
    }

    fn kind(&self) -> &'t Kind {
        &self.tree.node(self.id).kind
    }

    /// The node's type in words (for "found ...").
    fn found(&self) -> &'static str {
        match self.kind() {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Placeholder => "nothing",
            Kind::Scalar { plain: false, .. } => "a string",
            Kind::Scalar { value, .. } => match resolve(value) {
                Plain::Null => "nothing",
                Plain::Bool(_) => "a boolean",
                Plain::Signed(_) => "a negative integer",
                Plain::Unsigned(_) => "an integer",
                Plain::Float(_) => "a number",
                Plain::Str(_) => "a string",
            },
        }
    }

    fn wrong_type<T>(&self, expected: &dyn Expected) -> Result<T, Error> {
        Err(Error::new(ErrorKind::WrongType {
            expected: expected.to_string(),
            found: self.found(),
        })
        .at(self.id))
    }

    /// A plain empty scalar (`key:` with nothing after it) reads as an empty list
    /// or mapping, as in serde_yaml.
    fn is_empty_plain(&self) -> bool {
        matches!(self.kind(), Kind::Scalar { value, plain: true } if value.is_empty())
    }

    fn is_null(&self) -> bool {
        matches!(self.kind(), Kind::Scalar { value, plain: true } if matches!(resolve(value), Plain::Null))
    }

    fn map_access(&self) -> Entries<'t> {
        let entries = match self.kind() {
            Kind::Map(e) => &e[..],
            _ => &[],
        };
        Entries {
            tree: self.tree,
            entries,
            next: 0,
            key: None,
        }
    }

    fn visit_map<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let mut access = self.map_access();
        visitor
            .visit_map(&mut access)
            .map_err(|e| match (&e.kind, access.key) {
                // a key seen twice: point at the second one
                (ErrorKind::DuplicateField(_), Some(k)) => e.at(k),
                _ => e.at(self.id),
            })
    }

    fn visit_seq<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let items = match self.kind() {
            Kind::Seq(items) => &items[..],
            _ => &[],
        };
        visitor
            .visit_seq(Items {
                tree: self.tree,
                items,
                next: 0,
            })
            .map_err(|e: Error| e.at(self.id))
    }
}

macro_rules! placeholder_first {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            if matches!(self.kind(), Kind::Placeholder) {
                return Zero.$method(visitor).map_err(|e: Error| e.at(self.id));
            }
            self.deserialize_any(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let id = self.id;
        match self.kind() {
            Kind::Placeholder => visitor.visit_unit(),
            Kind::Seq(_) => return self.visit_seq(visitor),
            Kind::Map(_) => return self.visit_map(visitor),
            Kind::Scalar {
                value,
                plain: false,
            } => visitor.visit_str(value),
            Kind::Scalar { value, .. } => match resolve(value) {
                Plain::Null => visitor.visit_unit(),
                Plain::Bool(b) => visitor.visit_bool(b),
                Plain::Unsigned(u) => visitor.visit_u64(u),
                Plain::Signed(i) => visitor.visit_i64(i),
                Plain::Float(x) => visitor.visit_f64(x),
                Plain::Str(s) => visitor.visit_str(s),
            },
        }
        .map_err(|e: Error| e.at(id))
    }

    placeholder_first!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64
    );

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Placeholder => visitor.visit_str(""),
            // any scalar reads as its text when a string is wanted, as in serde_yaml
            Kind::Scalar { value, .. } => visitor.visit_str(value),
            Kind::Seq(_) | Kind::Map(_) => self.wrong_type(&visitor),
        }
        .map_err(|e: Error| e.at(self.id))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Placeholder => visitor.visit_bytes(&[]),
            _ => self.wrong_type(&visitor),
        }
        .map_err(|e: Error| e.at(self.id))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if matches!(self.kind(), Kind::Placeholder) || self.is_null() {
            visitor.visit_none().map_err(|e: Error| e.at(self.id))
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if matches!(self.kind(), Kind::Placeholder) || self.is_null() {
            visitor.visit_unit().map_err(|e: Error| e.at(self.id))
        } else {
            self.wrong_type(&visitor)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Seq(_) | Kind::Placeholder => self.visit_seq(visitor),
            _ if self.is_empty_plain() => self.visit_seq(visitor),
            _ => self.wrong_type(&visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Map(_) | Kind::Placeholder => self.visit_map(visitor),
            _ if self.is_empty_plain() => self.visit_map(visitor),
            _ => self.wrong_type(&visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if matches!(self.kind(), Kind::Placeholder) {
            return Zero
                .deserialize_struct(name, fields, visitor)
                .map_err(|e: Error| e.at(self.id));
        }
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.kind() {
            Kind::Placeholder => Zero
                .deserialize_enum(name, variants, visitor)
                .map_err(|e: Error| e.at(self.id)),
            Kind::Scalar { .. } => visitor
                .visit_enum(UnitVariant(self))
                .map_err(|e: Error| e.at(self.id)),
            Kind::Seq(_) | Kind::Map(_) => Err(Error::new(ErrorKind::WrongType {
                expected: one_of(variants),
                found: self.found(),
            })
            .at(self.id)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// The entries of a mapping; remembers the last key handed out.
struct Entries<'t> {
    tree: &'t Tree,
    entries: &'t [(NodeId, NodeId)],
    next: usize,
    key: Option<NodeId>,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((k, _)) = self.entries.get(self.next) else {
            return Ok(None);
        };
        self.key = Some(*k);
        // errors a type raises after reading (e.g. `${ENV}`) belong to this node too
        seed.deserialize(De::new(self.tree, *k))
            .map(Some)
            .map_err(|e| e.at(*k))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let Some((_, v)) = self.entries.get(self.next) else {
            return Err(Error::new(ErrorKind::Custom(
                "a key without a value".into(),
            )));
        };
        self.next += 1;
        seed.deserialize(De::new(self.tree, *v))
            .map_err(|e| e.at(*v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

struct Items<'t> {
    tree: &'t Tree,
    items: &'t [NodeId],
    next: usize,
}

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let Some(id) = self.items.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(De::new(self.tree, *id))
            .map(Some)
            .map_err(|e| e.at(*id))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

/// An enum written as a scalar: the scalar names a unit variant.
struct UnitVariant<'t>(De<'t>);

impl<'de> EnumAccess<'de> for UnitVariant<'_> {
    type Error = Error;
    type Variant = NoContent;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, NoContent), Error> {
        Ok((seed.deserialize(self.0)?, NoContent))
    }
}

struct NoContent;

impl<'de> VariantAccess<'de> for NoContent {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, _seed: S) -> Result<S::Value, Error> {
        Err(Error::new(ErrorKind::Custom(
            "this value needs more than a name".into(),
        )))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::new(ErrorKind::Custom(
            "this value needs more than a name".into(),
        )))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(Error::new(ErrorKind::Custom(
            "this value needs more than a name".into(),
        )))
    }
}

/// The stand-in for a removed value: the zero of every type.
#[derive(Clone, Copy)]
struct Zero;

impl<'de> de::Deserializer<'de> for Zero {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(0)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(0)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_char(' ')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_none()
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(de::value::SeqDeserializer::<_, Error>::new(
            std::iter::empty::<()>(),
        ))
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(de::value::MapDeserializer::<_, Error>::new(
            std::iter::empty::<((), ())>(),
        ))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(ZeroFields { fields, next: 0 })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(FirstVariant(variants))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// Every field of a struct, each a zero.
struct ZeroFields {
    fields: &'static [&'static str],
    next: usize,
}

impl<'de> MapAccess<'de> for ZeroFields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(f) = self.fields.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize((*f).into_deserializer()).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(Zero)
    }
}

/// An enum's first variant, with zero content.
struct FirstVariant(&'static [&'static str]);

impl<'de> EnumAccess<'de> for FirstVariant {
    type Error = Error;
    type Variant = Zero;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Zero), Error> {
        let Some(first) = self.0.first() else {
            return Err(Error::new(ErrorKind::Custom("no value is possible".into())));
        };
        Ok((seed.deserialize((*first).into_deserializer())?, Zero))
    }
}

impl<'de> VariantAccess<'de> for Zero {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(Zero)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(Zero, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(ZeroFields { fields, next: 0 })
    }
}
