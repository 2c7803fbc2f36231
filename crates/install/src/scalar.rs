//! Scalars typed by the schema rather than by how they were written.
//!
//! `--set` values arrive as text and YAML authors quote freely, so a field the schema types as a
//! string accepts `1.20` written as a number, a bool field accepts `"true"`, and an integer field
//! accepts `"3"`. Serializing gives the schema's type back, which is how `profile dump` shows a
//! `--set tag=1` as the string `"1"` and `--set ...replicaCount=2` as the number `2`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A string field; numbers and bools are accepted and kept as their text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Str(pub String);

/// A bool field; the strings `"true"` and `"false"` are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bool(pub bool);

/// An integer field; strings holding an integer are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Int(pub i64);

/// A number field (such as a sampling percentage); numeric strings are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Num(pub f64);

/// Kubernetes `IntOrString` (ports, PDB budgets) and quantities (`100m`, `1`, `0.5`).
#[derive(Debug, Clone, PartialEq)]
pub enum IntOrString {
    Int(i64),
    Float(f64),
    String(String),
}

impl Str {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl IntOrString {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            IntOrString::Int(i) => serde_json::Value::from(*i),
            IntOrString::Float(x) => serde_json::Value::from(*x),
            IntOrString::String(s) => serde_json::Value::from(s.clone()),
        }
    }
}

struct StrVisitor;

impl Visitor<'_> for StrVisitor {
    type Value = Str;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
        Ok(Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Str, E> {
        Ok(Str(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Str, E> {
        Ok(Str(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str, E> {
        Ok(Str(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str, E> {
        Ok(Str(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Str, E> {
        Ok(Str(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor)
    }
}

impl Serialize for Str {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = Bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bool (true or false)")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Bool, E> {
        Ok(Bool(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bool, E> {
        match v {
            "true" => Ok(Bool(true)),
            "false" => Ok(Bool(false)),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BoolVisitor)
    }
}

impl Serialize for Bool {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.0)
    }
}

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = Int;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
        Ok(Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
        i64::try_from(v)
            .map(Int)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(Int(v as i64))
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
        v.parse::<i64>()
            .map(Int)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor)
    }
}

impl Serialize for Int {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

struct NumVisitor;

impl Visitor<'_> for NumVisitor {
    type Value = Num;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
        Ok(Num(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
        Ok(Num(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
        Ok(Num(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Num)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumVisitor)
    }
}

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Whole numbers print as integers so `traceSampling: 100` stays `100`.
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            s.serialize_i64(self.0 as i64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

struct IntOrStringVisitor;

impl Visitor<'_> for IntOrStringVisitor {
    type Value = IntOrString;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
        Ok(IntOrString::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
        Ok(i64::try_from(v).map_or(IntOrString::Float(v as f64), IntOrString::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<IntOrString, E> {
        Ok(IntOrString::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
        Ok(IntOrString::String(v.to_owned()))
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrStringVisitor)
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i64(*i),
            IntOrString::Float(x) => s.serialize_f64(*x),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}
