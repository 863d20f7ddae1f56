//! A serde deserializer over the config tree. It reads scalars the way
//! `serde_yaml_ng` does, and its errors are structured and never carry a value:
//! "expected a list, found a string", tied to the node where they happened.
//! A placeholder node reads as [`Zero`], so a removed value cannot make its parent
//! fail in turn.

use super::reason::one_of;
pub use super::reason::{Error, ErrorKind};
use super::tree::{Kind, NodeId, Tree};
use super::zero::Zero;
use serde::de::{
    self, DeserializeSeed, EnumAccess, Expected, MapAccess, SeqAccess, VariantAccess, Visitor,
};

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
