//! A strict reader for JSON request bodies: one object, no duplicate keys at any
//! depth, and a value model just rich enough to tell a string from a `null` from
//! everything else. Field rules then run over the result in a fixed order, so
//! every body meets the same check order (decode, missing, unknown, format).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{ErrorKind, Rejection};

/// A member's value, as far as field rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Null,
    /// Any other JSON type, named for the error message.
    Other(&'static str),
}

/// The members of a JSON object in document order, keys unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<'a> {
    members: Vec<(Cow<'a, str>, Value<'a>)>,
}

/// The fields an endpoint knows, and which of them are required.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
}

impl<'a> Object<'a> {
    /// Parses `body` as a single JSON object, refusing syntax errors, trailing
    /// data, non-objects and duplicate keys (at any depth) with `decode_error`.
    pub fn parse(body: &'a [u8]) -> Result<Self, Rejection> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let object = de.deserialize_any(ObjectVisitor).map_err(decode_error)?;
        de.end().map_err(decode_error)?;
        Ok(object)
    }

    /// Checks presence and the key set: the first required field that is absent
    /// or `null` is `missing_param`; then the first unknown key is
    /// `validation_error`.
    pub fn check(&self, schema: &Schema) -> Result<(), Rejection> {
        if let Some(missing) = schema
            .required
            .iter()
            .find(|name| matches!(self.get(name), None | Some(Value::Null)))
        {
            return Err(Rejection::missing(missing));
        }
        let known = |key: &str| schema.required.contains(&key) || schema.optional.contains(&key);
        if let Some((unknown, _)) = self.members.iter().find(|(key, _)| !known(key)) {
            return Err(Rejection::unknown_field("", unknown));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        self.members
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The string value of `name`; `None` when absent or `null`; a
    /// `validation_error` naming the field when it has another type.
    pub fn str(&self, name: &str) -> Result<Option<&str>, Rejection> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(text)) => Ok(Some(text)),
            Some(Value::Other(kind)) => Err(Rejection::invalid(
                name,
                &format!("must be a string, not {kind}"),
            )),
        }
    }

    /// Like [`Object::str`] for a field [`Object::check`] already found present.
    pub fn required_str(&self, name: &str) -> Result<&str, Rejection> {
        self.str(name)?.ok_or_else(|| Rejection::missing(name))
    }

    /// A required field holding a UUID in any form `Uuid` accepts; a
    /// `validation_error` naming the field otherwise.
    pub fn required_uuid(&self, name: &str) -> Result<uuid::Uuid, Rejection> {
        uuid::Uuid::try_parse(self.required_str(name)?)
            .map_err(|_| Rejection::invalid(name, "must be a UUID"))
    }

    /// Every member, in document order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.members
            .iter()
            .map(|(key, value)| (key.as_ref(), value))
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

fn decode_error(error: serde_json::Error) -> Rejection {
    let why = if error.is_syntax() || error.is_eof() {
        format!(
            "body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        )
    } else {
        // Our own visitor errors (wrong top-level type, duplicate key) carry a
        // fixed message that names at most a key.
        let text = error.to_string();
        text.split(" at line ")
            .next()
            .unwrap_or("body is not a JSON object")
            .to_owned()
    };
    Rejection::new(ErrorKind::DecodeError, why)
}

/// Duplicate-key detection for one object. The caller keeps the keys it has seen;
/// while there are few, they are scanned. Past [`KeyCheck::SWITCH_AT`] they move
/// into a hash set, so a body packed with keys cannot make the check quadratic.
#[derive(Default)]
struct KeyCheck<'a> {
    index: Option<HashSet<Cow<'a, str>>>,
}

impl<'a> KeyCheck<'a> {
    const SWITCH_AT: usize = 16;

    /// Whether `key` is one of `earlier`, every key seen before it in the object.
    #[expect(
        clippy::ptr_arg,
        reason = "the set stores the Cow itself, so a borrowed key is kept without a copy"
    )]
    fn repeated<'s>(
        &mut self,
        mut earlier: impl ExactSizeIterator<Item = &'s Cow<'a, str>>,
        key: &Cow<'a, str>,
    ) -> bool
    where
        'a: 's,
    {
        if let Some(index) = &mut self.index {
            return !index.insert(key.clone());
        }
        if earlier.len() < Self::SWITCH_AT {
            return earlier.any(|seen| seen == key);
        }
        let mut index: HashSet<Cow<'a, str>> = earlier.cloned().collect();
        let repeated = !index.insert(key.clone());
        self.index = Some(index);
        repeated
    }

    /// Whether the hash set has taken over, so the caller need keep no more keys.
    fn indexed(&self) -> bool {
        self.index.is_some()
    }
}

fn duplicate<E: de::Error>(key: &str) -> E {
    let shown: String = key.chars().take(64).flat_map(char::escape_debug).collect();
    E::custom(format!("duplicate key \"{shown}\""))
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Value<'de>)> =
            Vec::with_capacity(map.size_hint().unwrap_or(10));
        // The members themselves are the keys seen while the object is small (a
        // request body has a handful of fields).
        let mut check = KeyCheck::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if check.repeated(members.iter().map(|(seen, _)| seen), &key) {
                return Err(duplicate(&key));
            }
            let value = map.next_value_seed(ValueSeed)?;
            members.push((key, value));
        }
        Ok(Object { members })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("body is a JSON array, not an object"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom("body is a JSON string, not an object"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom("body is null, not an object"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom("body is a boolean, not an object"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom("body is a number, not an object"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom("body is a number, not an object"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom("body is a number, not an object"))
    }
}

/// An object key, borrowed from the body unless it contained escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Value::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Value::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Value::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Value::Other("a number"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element_seed(StrictIgnore)?.is_some() {}
        Ok(Value::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        StrictIgnore.visit_map(map)?;
        Ok(Value::Other("an object"))
    }
}

/// Skips a value while still refusing duplicate keys inside it.
struct StrictIgnore;

impl<'de> DeserializeSeed<'de> for StrictIgnore {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictIgnore {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(StrictIgnore)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut check = KeyCheck::default();
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if check.repeated(seen.iter(), &key) {
                return Err(duplicate(&key));
            }
            if !check.indexed() {
                seen.push(key);
            }
            map.next_value::<IgnoredAnyStrict>()?;
        }
        Ok(())
    }
}

/// `StrictIgnore` as a `Deserialize` type, for `next_value`.
struct IgnoredAnyStrict;

impl<'de> de::Deserialize<'de> for IgnoredAnyStrict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(StrictIgnore)
            .map(|()| IgnoredAnyStrict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCHEMA: Schema = Schema {
        required: &["a", "b"],
        optional: &["c"],
    };

    fn kind_of(body: &str) -> Option<ErrorKind> {
        Object::parse(body.as_bytes())
            .and_then(|o| o.check(&SCHEMA))
            .err()
            .map(|r| r.kind())
    }

    #[test]
    fn decode_errors() {
        let cases = [
            ("", "empty"),
            ("{", "truncated"),
            ("[]", "array"),
            ("\"x\"", "string"),
            ("null", "null"),
            ("1", "number"),
            ("true", "bool"),
            (r#"{"a":"1","b":"2"} x"#, "trailing data"),
            (r#"{"a":"1","b":"2"}{}"#, "two objects"),
            (r#"{"a":"1","a":"2","b":"3"}"#, "duplicate"),
            (
                r#"{"a":"1","b":"2","\u0061":"3"}"#,
                "duplicate spelled with an escape",
            ),
            (r#"{"a":"1","b":"2","x":{"k":1,"k":2}}"#, "nested duplicate"),
            (
                r#"{"a":"1","b":"2","x":[{"k":1,"k":2}]}"#,
                "duplicate inside an array",
            ),
            ("{\"a\":\"\u{0}\"}", "raw control character"),
            ("\u{feff}{}", "byte order mark"),
            (r#"{'a':'1'}"#, "single quotes"),
        ];
        for (body, why) in cases {
            assert_eq!(kind_of(body), Some(ErrorKind::DecodeError), "{why}");
        }
        assert_eq!(
            Object::parse(&[0xff, 0xfe]).map_err(|r| r.kind()),
            Err(ErrorKind::DecodeError)
        );
    }

    #[test]
    fn presence_then_unknown_fields() {
        assert_eq!(kind_of(r#"{"a":"1","b":"2"}"#), None);
        assert_eq!(kind_of(r#"{"a":"1","b":"2","c":null}"#), None);
        assert_eq!(kind_of(r#"{"a":"1"}"#), Some(ErrorKind::MissingParam));
        assert_eq!(
            kind_of(r#"{"a":"1","b":null}"#),
            Some(ErrorKind::MissingParam)
        );
        assert_eq!(
            kind_of(r#"{"a":"1","b":"2","z":1}"#),
            Some(ErrorKind::ValidationError)
        );
        // Missing wins over unknown: it is the earlier check.
        assert_eq!(kind_of(r#"{"z":1,"b":"2"}"#), Some(ErrorKind::MissingParam));
    }

    #[test]
    fn messages_name_the_field() {
        let missing = Object::parse(br#"{"b":"2"}"#)
            .and_then(|o| o.check(&SCHEMA))
            .expect_err("missing a");
        assert_eq!(missing.message(), "a is required");
        let unknown = Object::parse(br#"{"a":"1","b":"2","amount_usd":"3"}"#)
            .and_then(|o| o.check(&SCHEMA))
            .expect_err("unknown");
        assert_eq!(unknown.message(), "unknown field \"amount_usd\"");
        let typed = Object::parse(br#"{"a":5}"#).expect("parses");
        assert_eq!(
            typed.str("a").expect_err("number").message(),
            "a: must be a string, not a number"
        );
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let object = Object::parse(br#"{"a":"caf\u00e9 \"x\""}"#).expect("parses");
        assert_eq!(object.str("a"), Ok(Some("café \"x\"")));
    }

    #[test]
    fn many_keys_stay_linear() {
        let members: Vec<String> = (0..5_000).map(|i| format!("\"k{i}\":0")).collect();
        let body = format!("{{{}}}", members.join(","));
        assert_eq!(Object::parse(body.as_bytes()).map(|o| o.len()), Ok(5_000));
        let duplicated = format!("{{{},\"k4999\":1}}", members.join(","));
        assert_eq!(
            Object::parse(duplicated.as_bytes()).map_err(|r| r.kind()),
            Err(ErrorKind::DecodeError)
        );
    }

    #[test]
    fn deep_nesting_is_a_decode_error_not_a_crash() {
        let body = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            Object::parse(body.as_bytes()).map_err(|r| r.kind()),
            Err(ErrorKind::DecodeError)
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Object::parse(&bytes).map(|o| o.check(&SCHEMA));
        }

        #[test]
        fn accepts_exactly_what_serde_json_accepts_as_an_object_without_duplicates(
            keys in proptest::collection::vec("[a-c]{1,2}", 0..6),
        ) {
            let members: Vec<String> = keys.iter().map(|k| format!("\"{k}\":\"v\"")).collect();
            let body = format!("{{{}}}", members.join(","));
            let unique: HashSet<&String> = keys.iter().collect();
            prop_assert_eq!(Object::parse(body.as_bytes()).is_ok(), unique.len() == keys.len());
        }
    }
}
