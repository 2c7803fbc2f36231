//! The `admission.k8s.io` AdmissionReview envelope shared by the injection (`/inject`) and
//! validation (`/validate`) handlers: reading the request out of a body, and writing a
//! response in the same `apiVersion`, carrying the request's `uid`. Never panics on input.

use serde_json::{Value, json};

/// The AdmissionReview versions the API server may send.
pub const V1: &str = "admission.k8s.io/v1";
pub const V1BETA1: &str = "admission.k8s.io/v1beta1";

/// `request.kind` / `request.resource`: group, version and kind (or resource).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// The parts of an `AdmissionRequest` the handlers use.
#[derive(Debug, Clone)]
pub struct AdmissionRequest<'a> {
    /// `admission.k8s.io/v1` or `v1beta1`: the response is written in the same version.
    pub api_version: String,
    pub uid: String,
    pub kind: GroupVersionKind,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT` (`CREATE` when absent).
    pub operation: String,
    /// `request.namespace` (empty for cluster-scoped objects).
    pub namespace: String,
    /// `request.name` (empty on CREATE with `generateName`).
    pub name: String,
    /// `request.object` (absent on DELETE).
    pub object: Option<&'a Value>,
    /// `request.dryRun`: the API server will not persist the object.
    pub dry_run: bool,
}

/// Why a body is not a usable AdmissionReview; the response still goes back as a review with
/// `allowed: false` so the API server can show the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub api_version: String,
    pub uid: String,
    pub reason: String,
}

/// Parses `body` as JSON; a body that is not JSON is [`Malformed`].
pub fn parse_json(body: &[u8]) -> Result<Value, Malformed> {
    serde_json::from_slice(body).map_err(|e| Malformed {
        api_version: V1.into(),
        uid: String::new(),
        reason: format!("body is not JSON: {e}"),
    })
}

/// Reads the request of an AdmissionReview document.
pub fn parse_request(doc: &Value) -> Result<AdmissionRequest<'_>, Malformed> {
    let malformed = |api_version: &str, uid: &str, reason: &str| Malformed {
        api_version: api_version.to_string(),
        uid: uid.to_string(),
        reason: reason.to_string(),
    };
    let api_version = match doc.get("apiVersion").and_then(Value::as_str) {
        Some(v @ (V1 | V1BETA1)) => v.to_string(),
        other => {
            let reason = format!(
                "apiVersion {} is not admission.k8s.io/v1 or v1beta1",
                other.map_or_else(|| "(missing)".to_string(), |v| format!("{v:?}"))
            );
            return Err(malformed(V1, "", &reason));
        }
    };
    if doc.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err(malformed(&api_version, "", "kind is not AdmissionReview"));
    }
    let Some(request) = doc.get("request").filter(|r| r.is_object()) else {
        return Err(malformed(&api_version, "", "request is missing"));
    };
    let Some(uid) = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return Err(malformed(&api_version, "", "request.uid is missing"));
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = request.get("kind");
    Ok(AdmissionRequest {
        uid: uid.to_string(),
        kind: GroupVersionKind {
            group: text(kind.and_then(|k| k.get("group"))),
            version: text(kind.and_then(|k| k.get("version"))),
            kind: text(kind.and_then(|k| k.get("kind"))),
        },
        operation: match text(request.get("operation")) {
            op if op.is_empty() => "CREATE".to_string(),
            op => op,
        },
        namespace: text(request.get("namespace")),
        name: text(request.get("name")),
        object: request.get("object").filter(|o| !o.is_null()),
        dry_run: request.get("dryRun").and_then(Value::as_bool) == Some(true),
        api_version,
    })
}

/// A response AdmissionReview around `response` (which must carry the `uid`).
pub fn envelope(api_version: &str, response: Value) -> Value {
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})
}

/// `allowed: true`, with warnings (shown by kubectl as `Warning: ...`) when there are any.
pub fn allowed(api_version: &str, uid: &str, warnings: &[String]) -> Value {
    let mut response = json!({"uid": uid, "allowed": true});
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    envelope(api_version, response)
}

/// `allowed: false` with a `Status` carrying `message` (the API server shows it after
/// `admission webhook "<name>" denied the request: `) and, when not 0, `code`.
pub fn denied(api_version: &str, uid: &str, code: u16, message: &str) -> Value {
    let mut status = json!({"message": message});
    if code != 0 {
        status["code"] = json!(code);
    }
    envelope(
        api_version,
        json!({"uid": uid, "allowed": false, "status": status}),
    )
}

impl Malformed {
    /// The response for a review that could not be read (HTTP 200, `allowed: false`).
    pub fn response(&self) -> Value {
        denied(&self.api_version, &self.uid, 400, &self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_and_answers_in_its_version() {
        let doc = json!({
            "apiVersion": "admission.k8s.io/v1beta1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "networking.istio.io", "version": "v1", "kind": "Gateway"},
                "operation": "UPDATE",
                "namespace": "ns",
                "name": "gw",
                "object": {"spec": {}},
                "dryRun": true,
            }
        });
        let req = parse_request(&doc).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(req.kind.group, "networking.istio.io");
        assert_eq!(
            (req.operation.as_str(), req.name.as_str()),
            ("UPDATE", "gw")
        );
        assert!(req.dry_run && req.object.is_some());
        let out = allowed(&req.api_version, &req.uid, &["careful".into()]);
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(out["response"]["warnings"][0], "careful");
        let out = denied(V1, "u1", 0, "no");
        assert!(out["response"]["status"].get("code").is_none());
        assert_eq!(out["response"]["status"]["message"], "no");
    }

    #[test]
    fn malformed_reviews() {
        for doc in [
            json!([]),
            json!({"apiVersion": "v1", "kind": "AdmissionReview"}),
            json!({"apiVersion": V1, "kind": "Other", "request": {"uid": "x"}}),
            json!({"apiVersion": V1, "kind": "AdmissionReview", "request": {}}),
        ] {
            let e = parse_request(&doc).err();
            assert!(e.is_some(), "{doc}");
        }
        assert!(parse_json(b"not json").is_err());
    }
}
