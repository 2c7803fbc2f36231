//! RFC 6902 JSON Patch between two JSON values (the original and the injected pod), and a small
//! applier for the operations it emits (used to check patches in tests and by callers).

use serde_json::{Value, json};

/// Escapes one JSON Pointer segment (RFC 6901).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The operations (`add`, `remove`, `replace`) that turn `from` into `to`.
pub fn diff(from: &Value, to: &Value) -> Vec<Value> {
    let mut ops = Vec::new();
    diff_at(from, to, "", &mut ops);
    ops
}

fn diff_at(from: &Value, to: &Value, path: &str, ops: &mut Vec<Value>) {
    if from == to {
        return;
    }
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}/{}", escape(k));
                match b.get(k) {
                    Some(vb) => diff_at(va, vb, &p, ops),
                    None => ops.push(json!({"op": "remove", "path": p})),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    ops.push(
                        json!({"op": "add", "path": format!("{path}/{}", escape(k)), "value": vb}),
                    );
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let common = a.len().min(b.len());
            for i in 0..common {
                diff_at(&a[i], &b[i], &format!("{path}/{i}"), ops);
            }
            for (i, vb) in b.iter().enumerate().skip(common) {
                ops.push(json!({"op": "add", "path": format!("{path}/{i}"), "value": vb}));
            }
            // Remove from the end so earlier indices stay valid.
            for i in (common..a.len()).rev() {
                ops.push(json!({"op": "remove", "path": format!("{path}/{i}")}));
            }
        }
        _ => ops.push(json!({"op": "replace", "path": path, "value": to})),
    }
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("JSON patch operation {index}: {reason}")]
pub struct PatchError {
    pub index: usize,
    pub reason: String,
}

/// Applies `add`, `remove` and `replace` operations (what [`diff`] emits) to `doc`.
pub fn apply(doc: &mut Value, ops: &[Value]) -> Result<(), PatchError> {
    for (index, op) in ops.iter().enumerate() {
        let err = |reason: &str| PatchError {
            index,
            reason: reason.to_string(),
        };
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| err("missing op"))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| err("missing path"))?;
        if path.is_empty() {
            if kind == "remove" {
                return Err(err("cannot remove the whole document"));
            }
            *doc = op
                .get("value")
                .cloned()
                .ok_or_else(|| err("missing value"))?;
            continue;
        }
        let (parent_path, last) = path
            .rsplit_once('/')
            .ok_or_else(|| err("path must start with /"))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let parent = doc
            .pointer_mut(parent_path)
            .ok_or_else(|| err("parent path does not exist"))?;
        match (kind, parent) {
            ("add" | "replace", Value::Object(map)) => {
                let value = op
                    .get("value")
                    .cloned()
                    .ok_or_else(|| err("missing value"))?;
                if kind == "replace" && !map.contains_key(&last) {
                    return Err(err("replace of a missing member"));
                }
                map.insert(last, value);
            }
            ("remove", Value::Object(map)) => {
                map.remove(&last)
                    .ok_or_else(|| err("remove of a missing member"))?;
            }
            (_, Value::Array(list)) => {
                let value = op.get("value").cloned();
                let idx = if last == "-" {
                    list.len()
                } else {
                    last.parse::<usize>().map_err(|_| err("bad array index"))?
                };
                match kind {
                    "add" if idx <= list.len() => {
                        list.insert(idx, value.ok_or_else(|| err("missing value"))?)
                    }
                    "replace" if idx < list.len() => {
                        list[idx] = value.ok_or_else(|| err("missing value"))?
                    }
                    "remove" if idx < list.len() => {
                        list.remove(idx);
                    }
                    _ => return Err(err("array index out of range or unknown op")),
                }
            }
            _ => return Err(err("unsupported op or parent is not a container")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_then_apply_round_trips() {
        let from = json!({"a": 1, "b/c": [1, 2, 3], "d": {"e": "x"}, "gone": true});
        let to = json!({"a": 2, "b/c": [1, 5], "d": {"e": "x", "f": [1]}, "new~": null});
        let ops = diff(&from, &to);
        let mut doc = from.clone();
        apply(&mut doc, &ops).unwrap();
        assert_eq!(doc, to);
    }
}
