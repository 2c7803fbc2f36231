//! YAML in and out (serde-saphyr), with errors that name the source.

use serde_json::Value;

use crate::error::{InstallError, Result};

/// Parses one YAML document that must be a mapping (an empty document is an empty mapping).
pub fn parse_document(text: &str, source_name: &str) -> Result<Value> {
    let parse_error = |message: String| InstallError::Parse {
        source_name: source_name.to_owned(),
        message,
    };
    let documents: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|err| parse_error(format!("invalid YAML: {err}")))?;
    let mut documents: Vec<Value> = documents.into_iter().filter(|doc| !doc.is_null()).collect();
    match documents.len() {
        0 => Ok(Value::Object(serde_json::Map::new())),
        1 => match documents.remove(0) {
            doc @ Value::Object(_) => Ok(doc),
            _ => Err(parse_error("the document is not a mapping".to_owned())),
        },
        n => Err(parse_error(format!(
            "expected one IstioOperator document, found {n}"
        ))),
    }
}

/// Writes one value as a YAML document (no leading `---`).
pub fn to_yaml(value: &Value) -> Result<String> {
    let text =
        serde_saphyr::to_string(value).map_err(|err| InstallError::Serialize(err.to_string()))?;
    let text = text.strip_prefix("---\n").unwrap_or(&text).to_owned();
    Ok(if text.ends_with('\n') {
        text
    } else {
        text + "\n"
    })
}

/// Writes values as one multi-document YAML stream.
pub fn to_yaml_stream(values: &[Value]) -> Result<String> {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        out.push_str(&to_yaml(value)?);
    }
    Ok(out)
}
