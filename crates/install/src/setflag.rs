//! `--set path=value` flags and the path syntax they share with `k8s.overlays[].patches[].path`
//! and `--config-path`.
//!
//! A path is dot-separated keys (`meshConfig.accessLogFile`), list indexes (`ports[1]`) and
//! list selectors that pick the element whose field has a value
//! (`ingressGateways[name:istio-ingressgateway]`, also written `containers.[name:discovery]`).
//! A backslash escapes a dot inside a key (`podAnnotations.prometheus\.io/scrape`).

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A map key.
    Key(String),
    /// A list position.
    Index(usize),
    /// The list element whose `key` field equals `value`.
    Select { key: String, value: String },
}

/// Parses a path; the error says what is wrong with it.
pub fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut key = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => key.push(escaped),
                None => return Err("path ends with a lone backslash".to_owned()),
            },
            '.' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                } else if !matches!(
                    segments.last(),
                    Some(Segment::Index(_) | Segment::Select { .. })
                ) {
                    return Err(format!("empty key in path {path:?}"));
                }
            }
            '[' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
                let mut inside = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    inside.push(c);
                }
                if !closed {
                    return Err(format!("unclosed '[' in path {path:?}"));
                }
                segments.push(parse_bracket(&inside, path)?);
            }
            _ => key.push(c),
        }
    }
    if !key.is_empty() {
        segments.push(Segment::Key(key));
    } else if path.ends_with('.') {
        return Err(format!("path {path:?} ends with '.'"));
    }
    if segments.is_empty() {
        return Err("empty path".to_owned());
    }
    Ok(segments)
}

fn parse_bracket(inside: &str, path: &str) -> Result<Segment, String> {
    if let Some((key, value)) = inside.split_once(':') {
        if key.is_empty() {
            return Err(format!(
                "selector [{inside}] in path {path:?} needs a field name"
            ));
        }
        return Ok(Segment::Select {
            key: key.trim().to_owned(),
            value: value.trim().to_owned(),
        });
    }
    inside
        .trim()
        .parse::<usize>()
        .map(Segment::Index)
        .map_err(|_| {
            format!("[{inside}] in path {path:?} is neither an index nor a [key:value] selector")
        })
}

/// Renders segments back as a path (for messages).
pub fn display_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key.replace('.', "\\."));
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
            Segment::Select { key, value } => out.push_str(&format!("[{key}:{value}]")),
        }
    }
    out
}

/// Whether a missing key or selected list element may be created while walking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// `--set`: missing maps and selected elements are created.
    Missing,
    /// Overlay patches: missing map keys are created, list elements must exist.
    MapKeysOnly,
}

/// Puts `value` at `segments` in `tree`.
pub fn set_at(
    tree: &mut Value,
    segments: &[Segment],
    value: Value,
    create: Create,
) -> Result<(), String> {
    let Some((last, parents)) = segments.split_last() else {
        *tree = value;
        return Ok(());
    };
    let parent = walk_mut(tree, parents, create, segments)?;
    match last {
        Segment::Key(key) => {
            if parent.is_null() {
                *parent = Value::Object(Map::new());
            }
            let Value::Object(map) = parent else {
                return Err(format!("{} is not a map", display_path(parents)));
            };
            map.insert(key.clone(), value);
        }
        _ => {
            let slot = step_mut(parent, last, create, segments)?;
            *slot = value;
        }
    }
    Ok(())
}

/// Removes what `segments` select; a path that selects nothing is an error.
pub fn delete_at(tree: &mut Value, segments: &[Segment]) -> Result<(), String> {
    let Some((last, parents)) = segments.split_last() else {
        return Err("cannot delete the whole object".to_owned());
    };
    let parent = walk_mut(tree, parents, Create::MapKeysOnly, segments)?;
    let missing = || format!("{} selects nothing", display_path(segments));
    match (last, parent) {
        (Segment::Key(key), Value::Object(map)) => map.remove(key).map(|_| ()).ok_or_else(missing),
        (Segment::Index(index), Value::Array(list)) if *index < list.len() => {
            list.remove(*index);
            Ok(())
        }
        (Segment::Select { key, value }, Value::Array(list)) => {
            let position = list
                .iter()
                .position(|item| selects(item, key, value))
                .ok_or_else(missing)?;
            list.remove(position);
            Ok(())
        }
        _ => Err(missing()),
    }
}

/// The value at `segments`, if there is one.
pub fn get_at<'a>(tree: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    segments
        .iter()
        .try_fold(tree, |node, segment| match (segment, node) {
            (Segment::Key(key), Value::Object(map)) => map.get(key),
            (Segment::Index(index), Value::Array(list)) => list.get(*index),
            (Segment::Select { key, value }, Value::Array(list)) => {
                list.iter().find(|item| selects(item, key, value))
            }
            _ => None,
        })
}

fn walk_mut<'a>(
    tree: &'a mut Value,
    segments: &[Segment],
    create: Create,
    full: &[Segment],
) -> Result<&'a mut Value, String> {
    let mut node = tree;
    for segment in segments {
        node = step_mut(node, segment, create, full)?;
    }
    Ok(node)
}

fn step_mut<'a>(
    node: &'a mut Value,
    segment: &Segment,
    create: Create,
    full: &[Segment],
) -> Result<&'a mut Value, String> {
    let full_path = display_path(full);
    match segment {
        Segment::Key(key) => {
            if node.is_null() {
                *node = Value::Object(Map::new());
            }
            let Value::Object(map) = node else {
                return Err(format!(
                    "{full_path}: {key:?} is reached through a value that is not a map"
                ));
            };
            Ok(map.entry(key.clone()).or_insert(Value::Null))
        }
        Segment::Index(index) => {
            if node.is_null() && create == Create::Missing {
                *node = Value::Array(Vec::new());
            }
            let Value::Array(list) = node else {
                return Err(format!(
                    "{full_path}: [{index}] indexes a value that is not a list"
                ));
            };
            if *index == list.len() && create == Create::Missing {
                list.push(Value::Null);
            }
            let len = list.len();
            list.get_mut(*index).ok_or_else(|| {
                format!("{full_path}: index {index} is out of range (the list has {len} items)")
            })
        }
        Segment::Select { key, value } => {
            if node.is_null() && create == Create::Missing {
                *node = Value::Array(Vec::new());
            }
            let Value::Array(list) = node else {
                return Err(format!(
                    "{full_path}: [{key}:{value}] selects in a value that is not a list"
                ));
            };
            let position = match list.iter().position(|item| selects(item, key, value)) {
                Some(position) => position,
                None if create == Create::Missing => {
                    let mut item = Map::new();
                    item.insert(key.clone(), Value::String(value.clone()));
                    list.push(Value::Object(item));
                    list.len() - 1
                }
                None => return Err(format!("{full_path}: no list item has {key} = {value:?}")),
            };
            Ok(&mut list[position])
        }
    }
}

fn selects(item: &Value, key: &str, value: &str) -> bool {
    match item.get(key) {
        Some(Value::String(s)) => s == value,
        Some(Value::Number(n)) => n.to_string() == value,
        Some(Value::Bool(b)) => b.to_string() == value,
        _ => false,
    }
}

/// A parsed `--set` flag.
#[derive(Debug, Clone)]
pub struct SetFlag {
    /// The flag as given, for messages.
    pub text: String,
    /// The path from the document root (always starting at `spec`).
    pub path: Vec<Segment>,
    /// The value, typed by its spelling (the schema retypes it later).
    pub value: Value,
}

/// Parses `path=value`. Paths may omit the `spec.` prefix, as Istio accepts.
pub fn parse_set(flag: &str) -> Result<SetFlag, String> {
    let (path, raw_value) = flag
        .split_once('=')
        .ok_or_else(|| "expected path=value".to_owned())?;
    let path = path.trim();
    let path = path.strip_prefix("spec.").unwrap_or(path);
    let mut segments = vec![Segment::Key("spec".to_owned())];
    segments.extend(parse_path(path)?);
    Ok(SetFlag {
        text: flag.to_owned(),
        path: segments,
        value: infer_scalar(raw_value),
    })
}

/// Types a `--set` value by its spelling, in a way that prints back the same text: `true` and
/// `false` are bools, canonical integers and decimals are numbers, all else is a string. The
/// schema turns a number back into text where the field is a string (`tag=1.20` stays `1.20`
/// because `1.2` would not print the same, and is kept a string here).
pub fn infer_scalar(raw: &str) -> Value {
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(int) = raw.parse::<i64>()
        && int.to_string() == raw
    {
        return Value::from(int);
    }
    if let Ok(float) = raw.parse::<f64>()
        && float.is_finite()
        && float.to_string() == raw
        && let Some(number) = serde_json::Number::from_f64(float)
    {
        return Value::Number(number);
    }
    Value::String(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_keys_indexes_and_selectors() {
        let segments =
            parse_path("components.ingressGateways[name:istio-ingressgateway].k8s.ports[2]")
                .unwrap();
        assert_eq!(
            segments,
            vec![
                Segment::Key("components".into()),
                Segment::Key("ingressGateways".into()),
                Segment::Select {
                    key: "name".into(),
                    value: "istio-ingressgateway".into()
                },
                Segment::Key("k8s".into()),
                Segment::Key("ports".into()),
                Segment::Index(2),
            ]
        );
        let overlay_style =
            parse_path("spec.template.spec.containers.[name:discovery].args[1]").unwrap();
        assert_eq!(
            overlay_style[4],
            Segment::Select {
                key: "name".into(),
                value: "discovery".into()
            }
        );
        assert_eq!(
            parse_path(r"a.prometheus\.io/scrape").unwrap()[1],
            Segment::Key("prometheus.io/scrape".into())
        );
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[x").is_err());
        assert!(parse_path("a[x]").is_err());
    }

    #[test]
    fn infers_scalars_that_print_back_the_same() {
        assert_eq!(infer_scalar("true"), json!(true));
        assert_eq!(infer_scalar("3"), json!(3));
        assert_eq!(infer_scalar("1.5"), json!(1.5));
        assert_eq!(infer_scalar("1.20"), json!("1.20"));
        assert_eq!(infer_scalar("007"), json!("007"));
        assert_eq!(infer_scalar("100m"), json!("100m"));
    }

    #[test]
    fn set_creates_and_selects() {
        let mut tree =
            json!({"spec": {"components": {"ingressGateways": [{"name": "a", "enabled": true}]}}});
        let flag = parse_set("components.ingressGateways[name:a].enabled=false").unwrap();
        set_at(&mut tree, &flag.path, flag.value, Create::Missing).unwrap();
        assert_eq!(
            tree["spec"]["components"]["ingressGateways"][0]["enabled"],
            json!(false)
        );
        let flag = parse_set("spec.meshConfig.accessLogFile=/dev/stdout").unwrap();
        set_at(&mut tree, &flag.path, flag.value, Create::Missing).unwrap();
        assert_eq!(
            tree["spec"]["meshConfig"]["accessLogFile"],
            json!("/dev/stdout")
        );
        let path = parse_path("spec.components.ingressGateways[name:b].enabled").unwrap();
        assert!(set_at(&mut tree, &path, json!(true), Create::MapKeysOnly).is_err());
        delete_at(&mut tree, &parse_path("spec.meshConfig").unwrap()).unwrap();
        assert!(get_at(&tree, &parse_path("spec.meshConfig").unwrap()).is_none());
    }
}
