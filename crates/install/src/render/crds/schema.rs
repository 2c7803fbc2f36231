//! Small builders for OpenAPI v3 structural schemas, the vocabulary the per-group files use to
//! spell out Istio's CRD schemas field by field.
//!
//! Each builder returns a `serde_json::Value`; [`SchemaExt`] adds the constraints (bounds,
//! patterns, CEL rules, required fields) by chaining, so a field reads as one expression.

use serde_json::{Map, Value, json};

/// The message and rule Istio puts on every protobuf `Duration` field that must be positive.
const DURATION_RULE: &str = "duration(self) >= duration('1ms')";
const DURATION_MESSAGE: &str = "must be a valid duration greater than 1ms";

/// A string.
pub fn string() -> Value {
    json!({"type": "string"})
}

/// A string of at least one character (`minLength: 1`).
pub fn non_empty() -> Value {
    string().min_len(1)
}

/// A boolean.
pub fn boolean() -> Value {
    json!({"type": "boolean"})
}

/// A `google.protobuf.BoolValue`: a boolean that may be null.
pub fn nullable_boolean() -> Value {
    boolean().nullable()
}

/// A protobuf `int32`.
pub fn int32() -> Value {
    json!({"type": "integer", "format": "int32"})
}

/// A protobuf `int32` that must not be negative.
pub fn non_negative_int32() -> Value {
    int32().minimum(0)
}

/// A protobuf `uint32`: an integer in `0..=4294967295`.
pub fn uint32() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64})
}

/// An integer with no format or bounds of its own.
pub fn integer() -> Value {
    json!({"type": "integer"})
}

/// A protobuf `uint64` as Istio's generator writes it: an integer with only a lower bound.
pub fn uint64() -> Value {
    integer().minimum(0)
}

/// A protobuf `double`.
pub fn double() -> Value {
    json!({"type": "number", "format": "double"})
}

/// A port number: a `uint32` the CEL rule narrows to `1..=65535`.
pub fn port_number() -> Value {
    uint32().rule("0 < self && self <= 65535", "port must be between 1-65535")
}

/// A `google.protobuf.Duration` that must be at least a millisecond.
pub fn duration() -> Value {
    string().rule(DURATION_RULE, DURATION_MESSAGE)
}

/// A `google.protobuf.Duration` Istio leaves unchecked in the schema.
pub fn any_duration() -> Value {
    string()
}

/// A string limited to `values` (a protobuf enum).
pub fn enumeration(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// A list of `items`.
pub fn list(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// A list of strings.
pub fn strings() -> Value {
    list(string())
}

/// A map from string keys to `values`.
pub fn map(values: Value) -> Value {
    json!({"type": "object", "additionalProperties": values})
}

/// A map from string keys to strings.
pub fn string_map() -> Value {
    map(string())
}

/// An object whose content the API server keeps as written (a `google.protobuf.Struct`).
pub fn preserved() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A Kubernetes `IntOrString`.
pub fn int_or_string() -> Value {
    json!({
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": true,
    })
}

/// An object with exactly these fields (unknown ones are pruned, or refused under strict
/// field validation).
pub fn object(properties: &[(&str, Value)]) -> Value {
    let props: Map<String, Value> = properties
        .iter()
        .map(|(name, schema)| ((*name).to_owned(), schema.clone()))
        .collect();
    json!({"type": "object", "properties": props})
}

/// Chainable constraints on a schema.
pub trait SchemaExt: Sized {
    /// Sets `key` to `value`.
    fn with(self, key: &str, value: Value) -> Self;
    /// Adds a CEL rule (`x-kubernetes-validations`) with the message the API server reports.
    fn rule(self, rule: &str, message: &str) -> Self;

    fn min_len(self, n: u64) -> Self {
        self.with("minLength", json!(n))
    }
    fn max_len(self, n: u64) -> Self {
        self.with("maxLength", json!(n))
    }
    fn pattern(self, regex: &str) -> Self {
        self.with("pattern", json!(regex))
    }
    fn format(self, format: &str) -> Self {
        self.with("format", json!(format))
    }
    fn minimum(self, n: i64) -> Self {
        self.with("minimum", json!(n))
    }
    fn maximum(self, n: i64) -> Self {
        self.with("maximum", json!(n))
    }
    fn min_items(self, n: u64) -> Self {
        self.with("minItems", json!(n))
    }
    fn max_items(self, n: u64) -> Self {
        self.with("maxItems", json!(n))
    }
    fn min_props(self, n: u64) -> Self {
        self.with("minProperties", json!(n))
    }
    fn max_props(self, n: u64) -> Self {
        self.with("maxProperties", json!(n))
    }
    /// A protobuf wrapper type (`google.protobuf.UInt32Value`, ...): null is allowed.
    fn nullable(self) -> Self {
        self.with("nullable", json!(true))
    }
    fn required(self, fields: &[&str]) -> Self {
        self.with("required", json!(fields))
    }
    /// A list keyed by `keys` (`x-kubernetes-list-type: map`): duplicates of a key are refused.
    fn list_map(self, keys: &[&str]) -> Self {
        self.with("x-kubernetes-list-type", json!("map"))
            .with("x-kubernetes-list-map-keys", json!(keys))
    }
    /// A protobuf `oneof`: at most one of `fields` is set.
    fn one_of(self, fields: &[&str]) -> Self {
        self.with("oneOf", at_most_one_of(fields))
    }
    /// Several protobuf `oneof`s in one message: each group holds at most one set field.
    fn one_of_each(self, groups: &[&[&str]]) -> Self {
        let all: Vec<Value> = groups
            .iter()
            .map(|fields| json!({"oneOf": at_most_one_of(fields)}))
            .collect();
        self.with("allOf", Value::Array(all))
    }
}

impl SchemaExt for Value {
    fn with(mut self, key: &str, value: Value) -> Self {
        if let Value::Object(map) = &mut self {
            map.insert(key.to_owned(), value);
        }
        self
    }

    fn rule(mut self, rule: &str, message: &str) -> Self {
        if let Value::Object(map) = &mut self {
            let rules = map
                .entry("x-kubernetes-validations")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(rules) = rules {
                rules.push(json!({"rule": rule, "message": message}));
            }
        }
        self
    }
}

/// How Istio's generator spells a `oneof` in OpenAPI: none of the fields, or exactly one.
fn at_most_one_of(fields: &[&str]) -> Value {
    let each: Vec<Value> = fields.iter().map(|f| json!({"required": [f]})).collect();
    let mut alternatives = vec![json!({"not": {"anyOf": each.clone()}})];
    alternatives.extend(each);
    Value::Array(alternatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_is_none_or_exactly_one() {
        let schema = object(&[("a", string()), ("b", string())]).one_of(&["a", "b"]);
        assert_eq!(
            schema["oneOf"],
            json!([
                {"not": {"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}},
                {"required": ["a"]},
                {"required": ["b"]},
            ])
        );
    }

    #[test]
    fn rules_accumulate_in_order() {
        let schema = string().rule("a", "first").rule("b", "second");
        assert_eq!(
            schema["x-kubernetes-validations"],
            json!([{"rule": "a", "message": "first"}, {"rule": "b", "message": "second"}])
        );
    }
}
