//! A JSON value that borrows its strings from the text it was read from.
//!
//! A 200-app configuration is about 90 KB of JSON. serde_json's `Value` gives
//! every key and every string its own allocation and every object a
//! `BTreeMap`, and the loader then copies what it keeps and frees the rest.
//! [`Json`] borrows each string that has no escapes from the text and keeps an
//! object as one vector, so reading an app costs a few allocations instead of
//! dozens; the loader copies only the strings it keeps.
//!
//! Objects behave as `Value`'s do: entries sorted by key, and a key written
//! twice keeps its last value. The loader checks keys in that order, so which
//! problem of several is reported first does not depend on this type. Values
//! that arrive as `Value` (a JS configuration's result, a `--set` value) are
//! borrowed into a `Json` with [`From`].

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// A JSON value whose strings may borrow from the text (`'a`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Self>),
    /// Sorted by key, each key once.
    Object(Vec<(Cow<'a, str>, Self)>),
}

impl<'a> Json<'a> {
    /// Parses `text`, borrowing from it. Errors are serde_json's, as for
    /// any other type (`serde_json::from_str` does the same steps).
    pub(crate) fn parse(text: &'a str) -> serde_json::Result<Self> {
        let mut scratch = Scratch::default();
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = Reader {
            scratch: &mut scratch,
        }
        .deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }

    /// The value of `key`, if this is an object that has it.
    pub(crate) fn get(&self, key: &str) -> Option<&Self> {
        let Self::Object(entries) = self else {
            return None;
        };
        entries
            .binary_search_by(|(name, _)| name.as_ref().cmp(key))
            .ok()
            .map(|index| &entries[index].1)
    }

    /// Whether this is `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

/// Entries in key order, the last of equal keys kept: what a `BTreeMap`
/// built by inserting them in order would hold.
fn object<'a>(mut entries: Vec<(Cow<'a, str>, Json<'a>)>) -> Json<'a> {
    if !entries.is_sorted_by(|(a, _), (b, _)| a < b) {
        // Reversed first, so that the stable sort puts the last of equal
        // keys first, and `dedup_by` keeps the first of each run.
        entries.reverse();
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        entries.dedup_by(|(later, _), (kept, _)| later == kept);
    }
    Json::Object(entries)
}

impl<'a> From<&'a Value> for Json<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => Self::Number(n.clone()),
            Value::String(s) => Self::String(Cow::Borrowed(s)),
            Value::Array(items) => Self::Array(items.iter().map(Self::from).collect()),
            // Already sorted and unique.
            Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(key, value)| (Cow::Borrowed(key.as_str()), Self::from(value)))
                    .collect(),
            ),
        }
    }
}

/// Where arrays and objects are gathered while they are read, before they
/// move into a vector of their exact size: one allocation per container,
/// where growing each by doubling took three or four, each in fresh memory.
/// A nested container uses the space above its parent's elements.
#[derive(Default)]
struct Scratch<'de> {
    items: Vec<Json<'de>>,
    entries: Vec<(Cow<'de, str>, Json<'de>)>,
}

/// Reads one value with a [`Scratch`].
struct Reader<'s, 'de> {
    scratch: &'s mut Scratch<'de>,
}

impl<'de> DeserializeSeed<'de> for Reader<'_, 'de> {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reader<'_, 'de> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Self::Value, E> {
        // As `Value` does: JSON text cannot hold a non-finite number.
        Ok(Number::from_f64(x).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        DeserializeSeed::deserialize(self, deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let start = self.scratch.items.len();
        while let Some(item) = seq.next_element_seed(Reader {
            scratch: &mut *self.scratch,
        })? {
            self.scratch.items.push(item);
        }
        Ok(Json::Array(self.scratch.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let start = self.scratch.entries.len();
        while let Some(Key(key)) = map.next_key()? {
            let value = map.next_value_seed(Reader {
                scratch: &mut *self.scratch,
            })?;
            self.scratch.entries.push((key, value));
        }
        Ok(object(self.scratch.entries.drain(start..).collect()))
    }
}

/// An object's key, borrowed when it has no escapes (serde's own `Cow`
/// always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(s)))
    }
}
