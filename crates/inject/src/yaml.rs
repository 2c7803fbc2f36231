//! Multi-document YAML in and out: what `lateen kube-inject` reads and writes.

use serde_json::Value;

use crate::workload::{Outcome, inject_object};
use crate::{InjectConfig, InjectError};

/// Parses every document of a (multi-document) YAML or JSON stream; empty documents are dropped.
pub fn parse_documents(input: &str) -> Result<Vec<Value>, InjectError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| InjectError::Yaml(e.to_string()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Writes documents as one YAML stream separated by `---`.
pub fn write_documents(docs: &[Value]) -> Result<String, InjectError> {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let text = serde_saphyr::to_string(doc).map_err(|e| InjectError::Yaml(e.to_string()))?;
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Injects every workload of a YAML stream; other documents pass through in order. Errors name
/// the document (index from 0, kind and name).
pub fn inject_documents(
    docs: &mut [Value],
    cfg: &InjectConfig,
) -> Result<Vec<Outcome>, InjectError> {
    docs.iter_mut()
        .enumerate()
        .map(|(index, doc)| {
            inject_object(doc, cfg).map_err(|e| InjectError::Document {
                index,
                kind: doc
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("<no kind>")
                    .to_string(),
                name: doc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Parse, inject, write: the whole of `kube-inject` on text.
pub fn inject_yaml(input: &str, cfg: &InjectConfig) -> Result<String, InjectError> {
    let mut docs = parse_documents(input)?;
    inject_documents(&mut docs, cfg)?;
    write_documents(&docs)
}
