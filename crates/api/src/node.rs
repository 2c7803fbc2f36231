//! A YAML document as a tree that remembers the line of every node, so errors found later (by
//! serde on the JSON form, or by validation) can point at the line of the offending field.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

use crate::error::{FieldPath, PathSegment};

/// A YAML node with the 1-based line where it appears (0 when unknown).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub line: u64,
    pub value: NodeValue,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The same data as JSON, which the typed structs are deserialized from.
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::Number((*i).into()),
            NodeValue::UInt(u) => Value::Number((*u).into()),
            // NaN and infinities have no JSON form; as strings they fail typed fields clearly.
            NodeValue::Float(f) => Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(f.to_string())),
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// The child at `path`, or the deepest ancestor that exists.
    pub fn deepest(&self, path: &FieldPath) -> &Node {
        let mut node = self;
        for segment in path.segments() {
            let next = match (segment, &node.value) {
                (PathSegment::Field(name), NodeValue::Map(entries)) => {
                    entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
                }
                (PathSegment::Index(i), NodeValue::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// Line of the field at `path` (or of its deepest existing ancestor), when known.
    pub fn line_of(&self, path: &FieldPath) -> Option<u64> {
        let line = self.deepest(path).line;
        (line > 0).then_some(line)
    }

    /// Reads flow-sequence items the way Go's YAML parser (which Istio and kubectl use) does:
    /// there a `:` directly followed by `,`, `]` or `}` is part of a plain scalar, so
    /// `[1.2.3.4, 001:db8::]` holds the string `001:db8::`; a YAML 1.2 parser reads the item as
    /// the one-key mapping `{"001:db8:": null}`. Such an item (one key, null value, and the
    /// source line showing `key:` right before a flow indicator) becomes the string again.
    pub fn go_flow_scalars(&mut self, lines: &[&str]) {
        match &mut self.value {
            NodeValue::Seq(items) => {
                for item in items {
                    if let Some(text) = item.go_flow_scalar(lines) {
                        item.value = NodeValue::Str(text);
                    } else {
                        item.go_flow_scalars(lines);
                    }
                }
            }
            NodeValue::Map(entries) => {
                for (_, v) in entries {
                    v.go_flow_scalars(lines);
                }
            }
            _ => {}
        }
    }

    fn go_flow_scalar(&self, lines: &[&str]) -> Option<String> {
        let NodeValue::Map(entries) = &self.value else {
            return None;
        };
        let [(key, value)] = entries.as_slice() else {
            return None;
        };
        if value.value != NodeValue::Null || key.is_empty() {
            return None;
        }
        let line = lines.get(usize::try_from(self.line).ok()?.checked_sub(1)?)?;
        let scalar = format!("{key}:");
        let mut rest = *line;
        while let Some(at) = rest.find(&scalar) {
            let after = &rest[at + scalar.len()..];
            if after.starts_with([',', ']', '}']) {
                return Some(scalar);
            }
            rest = &rest[at + 1..];
        }
        None
    }

    /// The child at a single map key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(d)?;
        Ok(Node {
            line: spanned.referenced.line(),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
        Ok(NodeValue::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeValue, E> {
        i64::try_from(v)
            .map(NodeValue::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeValue, E> {
        u64::try_from(v)
            .map(NodeValue::UInt)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key.0, value));
        }
        Ok(NodeValue::Map(entries))
    }
}

/// A mapping key as text: YAML allows numbers and booleans as keys (`9080: ...`), JSON field
/// names are strings.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<KeyString, E> {
                Ok(KeyString(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyString, E> {
                Ok(KeyString("null".to_string()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_yaml() {
        let text = "a: 1\nb:\n  - x: 2\n  - w:\n      z: hello\n---\n\n---\nc: [1, 2]\n";
        let docs: Vec<Node> = serde_saphyr::from_multiple(text).unwrap();
        assert_eq!(docs.len(), 2, "empty document skipped");
        let first = &docs[0];
        assert_eq!(first.line_of(&FieldPath::parse("a")), Some(1));
        assert_eq!(first.line_of(&FieldPath::parse("b[1].w.z")), Some(5));
        // Missing leaf: the deepest existing ancestor.
        assert_eq!(first.line_of(&FieldPath::parse("b[1].w.nope")), Some(5));
        assert_eq!(first.to_json()["b"][0]["x"], 2);
        assert_eq!(docs[1].line_of(&FieldPath::parse("c")), Some(9));
    }

    #[test]
    fn flow_colons_read_as_go_does() {
        let text = "a: [1.2.3.4, 001:db8::]\nb: [x: 1, w:]\nc:\n  - k:\n";
        let mut docs: Vec<Node> = serde_saphyr::from_multiple(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        docs[0].go_flow_scalars(&lines);
        let json = docs[0].to_json();
        assert_eq!(json["a"][1], "001:db8::");
        assert_eq!(json["b"][0]["x"], 1, "a real flow mapping stays");
        assert_eq!(json["b"][1], "w:");
        assert!(json["c"][0]["k"].is_null(), "block context is not affected");
    }
}
