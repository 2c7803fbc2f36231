//! Rust `Debug` text of prost messages (what lateend's dump holds) read back into JSON.

#[allow(unused_imports)]
use super::*;

/// Reads Rust `Debug` output of prost messages back into JSON: `Name { f: v, .. }` → object,
/// `Some(v)` → v, `None` → null, `Variant(v)` → `{"Variant": v}`, `[..]` → array, `{k: v}` →
/// object, plain identifiers (enum values) → strings. Raw field names lose their `r#`.
pub(super) fn parse_debug(text: &str) -> Result<Value, String> {
    let mut p = DebugParser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing text at byte {}", p.i));
    }
    Ok(v)
}

pub(super) struct DebugParser<'a> {
    pub(super) s: &'a [u8],
    pub(super) i: usize,
}

impl DebugParser<'_> {
    pub(super) fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    pub(super) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    pub(super) fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, self.i))
        }
    }

    pub(super) fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => {
                self.i += 1;
                let items = self.list(b']')?;
                Ok(Value::Array(items))
            }
            Some(b'{') => {
                self.i += 1;
                self.fields(true)
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => Ok(self.number()),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.named(),
            Some(c) => Err(format!("unexpected {:?} at byte {}", c as char, self.i)),
            None => Err("unexpected end".to_string()),
        }
    }

    pub(super) fn ident(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'#')
        {
            self.i += 1;
        }
        let word = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        word.strip_prefix("r#").map_or(word.clone(), str::to_string)
    }

    pub(super) fn named(&mut self) -> Result<Value, String> {
        let name = self.ident();
        match self.s.get(self.i) {
            Some(b'(') => {
                self.i += 1;
                let mut items = self.list(b')')?;
                let inner = if items.len() == 1 {
                    items.remove(0)
                } else {
                    Value::Array(items)
                };
                Ok(if name == "Some" {
                    inner
                } else {
                    json!({ name: inner })
                })
            }
            _ if self.peek() == Some(b'{') => {
                self.i += 1;
                self.fields(false)
            }
            _ => Ok(match name.as_str() {
                "None" => Value::Null,
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(name),
            }),
        }
    }

    pub(super) fn list(&mut self, close: u8) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(items);
            }
            items.push(self.value()?);
            if self.peek() == Some(b',') {
                self.i += 1;
            }
        }
    }

    /// Struct fields (`name: value`) or, for a map, `key: value` with any key value.
    pub(super) fn fields(&mut self, map: bool) -> Result<Value, String> {
        let mut object = Map::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Value::Object(object));
            }
            let key = if map {
                match self.value()? {
                    Value::String(s) => s,
                    other => other.to_string(),
                }
            } else {
                self.ident()
            };
            if key.is_empty() {
                return Err(format!("expected a field name at byte {}", self.i));
            }
            self.expect(b':')?;
            let v = self.value()?;
            object.insert(key, v);
            if self.peek() == Some(b',') {
                self.i += 1;
            }
        }
    }

    pub(super) fn number(&mut self) -> Value {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        if let Ok(n) = text.parse::<i64>() {
            return json!(n);
        }
        if let Ok(n) = text.parse::<u64>() {
            return json!(n);
        }
        text.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(text), Value::Number)
    }

    /// A Debug-escaped string: `\"`, `\\`, `\n`, `\r`, `\t`, `\0`, `\'`, `\u{..}`.
    pub(super) fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".to_string());
            };
            self.i += 1;
            match c {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("unterminated escape".to_string());
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'0' => out.push(0),
                        b'u' => {
                            let close = self.s[self.i..]
                                .iter()
                                .position(|&b| b == b'}')
                                .ok_or("bad \\u escape")?;
                            let hex = String::from_utf8_lossy(&self.s[self.i + 1..self.i + close])
                                .into_owned();
                            self.i += close + 1;
                            let ch = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
}
