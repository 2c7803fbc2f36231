//! A stub Kubernetes API server for tests: plain HTTP/1.1 on 127.0.0.1, one thread per
//! connection, objects kept in memory by URL path. It answers as the real one does for what the
//! installer and the operator use: server-side apply (setting uid, resourceVersion, generation),
//! merge patches of the status subresource, get, list (one namespace or all), and delete (a
//! namespace takes its objects with it). Deployments report not ready for their first
//! `ready_after_gets` reads (with the conditions a real controller sets), then ready.
//!
//! Shared by the tests of `lateen-install` and `lateen-cli` (`#[path]` include).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// Connections served at most, so the accept loop is bounded.
const MAX_CONNECTIONS: usize = 5000;

#[derive(Default)]
pub struct Store {
    /// Objects by URL path.
    pub objects: BTreeMap<String, Value>,
    /// Every request, as `METHOD path?query`.
    pub log: Vec<String>,
    /// Apply requests that were not a forced server-side apply by field manager `lateen`.
    pub bad_applies: Vec<String>,
    /// Bodies' `status` of every status-subresource patch, in order, with the object path.
    pub status_writes: Vec<(String, Value)>,
    /// Reads of each Deployment so far.
    deployment_reads: BTreeMap<String, usize>,
    /// A Deployment becomes ready on read number `ready_after_gets + 1`.
    pub ready_after_gets: usize,
    resource_version: u64,
}

impl Store {
    /// Requests whose log line starts with `prefix`.
    pub fn requests(&self, prefix: &str) -> Vec<String> {
        self.log
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Deletes as the API server does: an object with finalizers only gets a
    /// deletionTimestamp; a namespace takes its objects with it. False when there is none.
    pub fn delete(&mut self, path: &str) -> bool {
        let Some(object) = self.objects.get_mut(path) else {
            return false;
        };
        if object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            return true;
        }
        self.objects.remove(path);
        let segments = resource_segments(path);
        if segments.len() == 2 && segments[0] == "namespaces" {
            let inside = format!("/namespaces/{}/", segments[1]);
            self.objects.retain(|p, _| !p.contains(&inside));
        }
        true
    }

    /// Puts `object` at `path` as if a user created it.
    pub fn insert(&mut self, path: &str, mut object: Value) {
        self.resource_version += 1;
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = json!(self.resource_version.to_string());
        meta["uid"] = json!(format!("uid-{}", self.resource_version));
        if meta["generation"].is_null() {
            meta["generation"] = json!(1);
        }
        self.objects.insert(path.to_owned(), object);
    }
}

pub type Shared = Arc<Mutex<Store>>;

/// Starts the stub; Deployments turn ready after `ready_after_gets` reads.
pub fn start(ready_after_gets: usize) -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the stub API server");
    let address = format!("http://{}", listener.local_addr().expect("stub address"));
    let store: Shared = Arc::new(Mutex::new(Store {
        ready_after_gets,
        ..Store::default()
    }));
    let shared = store.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(MAX_CONNECTIONS).flatten() {
            let store = shared.clone();
            std::thread::spawn(move || serve(stream, store));
        }
    });
    (address, store)
}

/// The URL path of an object tree.
pub fn path_of(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let lower = kind.to_lowercase();
    let plural = if lower.ends_with('y') {
        format!("{}ies", &lower[..lower.len() - 1])
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    };
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{prefix}/{plural}/{name}"),
    }
}

fn serve(stream: TcpStream, store: Shared) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut length = 0usize;
        let mut content_type = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("content-type") {
                    content_type = value.trim().to_owned();
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (code, reply) = {
            let mut store = store.lock().expect("stub store");
            store.log.push(format!("{method} {target}"));
            answer(&mut store, &method, path, query, &content_type, &body)
        };
        let text = reply.to_string();
        let response = format!(
            "HTTP/1.1 {code} Stub\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": if code < 300 { "Success" } else { "Failure" }, "reason": reason, "code": code, "message": message}),
    )
}

/// Segments after `/api/v1` or `/apis/GROUP/VERSION`.
fn resource_segments(path: &str) -> Vec<&str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default().to_vec(),
        Some(&"apis") => segments.get(3..).unwrap_or_default().to_vec(),
        _ => Vec::new(),
    }
}

fn prefix_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let keep = if segments.first() == Some(&"api") {
        2
    } else {
        3
    };
    format!(
        "/{}",
        segments
            .iter()
            .take(keep)
            .cloned()
            .collect::<Vec<_>>()
            .join("/")
    )
}

fn answer(
    store: &mut Store,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let segments = resource_segments(path);
    match (method, segments.len()) {
        ("PATCH", 5) if segments[4] == "status" => {
            let object_path = path.trim_end_matches("/status").to_owned();
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return status(400, "BadRequest", "patch is not JSON");
            };
            store
                .status_writes
                .push((object_path.clone(), patch["status"].clone()));
            store.resource_version += 1;
            let version = store.resource_version.to_string();
            match store.objects.get_mut(&object_path) {
                Some(object) => {
                    object["status"] = patch["status"].clone();
                    object["metadata"]["resourceVersion"] = json!(version);
                    (200, object.clone())
                }
                None => status(404, "NotFound", "no such object"),
            }
        }
        ("PATCH", 2 | 4) if content_type == "application/merge-patch+json" => {
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return status(400, "BadRequest", "patch is not JSON");
            };
            let Some(mut object) = store.objects.get(path).cloned() else {
                return status(404, "NotFound", &format!("{path} not found"));
            };
            let expected = &patch["metadata"]["resourceVersion"];
            if !expected.is_null() && *expected != object["metadata"]["resourceVersion"] {
                return status(409, "Conflict", "the object has been modified");
            }
            merge(&mut object, &patch);
            let finalized = !object["metadata"]["deletionTimestamp"].is_null()
                && object["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty);
            if finalized {
                store.objects.remove(path);
                return (200, object);
            }
            store.insert(path, object);
            (200, store.objects[path].clone())
        }
        ("PATCH", 2 | 4) => {
            if content_type != "application/apply-patch+yaml"
                || !query.contains("fieldManager=lateen")
                || !query.contains("force=true")
            {
                store
                    .bad_applies
                    .push(format!("{path}?{query} ({content_type})"));
            }
            let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
                return status(400, "BadRequest", "apply body is not JSON");
            };
            let previous = store.objects.get(path).cloned();
            let generation = match &previous {
                Some(old) if old["spec"] == object["spec"] => {
                    old["metadata"]["generation"].as_i64().unwrap_or(1)
                }
                Some(old) => old["metadata"]["generation"].as_i64().unwrap_or(1) + 1,
                None => 1,
            };
            if let Some(old) = &previous {
                object["status"] = old["status"].clone();
                object["metadata"]["uid"] = old["metadata"]["uid"].clone();
            }
            object["metadata"]["generation"] = json!(generation);
            store.insert(path, object.clone());
            (200, store.objects[path].clone())
        }
        ("GET", 2 | 4) => {
            if path.contains("/deployments/") && store.objects.contains_key(path) {
                let reads = store.deployment_reads.entry(path.to_owned()).or_default();
                *reads += 1;
                let ready = *reads > store.ready_after_gets;
                if let Some(object) = store.objects.get_mut(path) {
                    object["status"] = deployment_status(object, ready);
                }
            }
            match store.objects.get(path) {
                Some(object) => (200, object.clone()),
                None => status(404, "NotFound", &format!("{path} not found")),
            }
        }
        ("GET", 1 | 3) => {
            let plural = segments[segments.len() - 1];
            let prefix = prefix_of(path);
            let items: Vec<Value> = store
                .objects
                .iter()
                .filter(|(object_path, _)| {
                    let Some((parent, _)) = object_path.rsplit_once('/') else {
                        return false;
                    };
                    parent == path
                        || (segments.len() == 1
                            && parent.starts_with(&format!("{prefix}/namespaces/"))
                            && parent.ends_with(&format!("/{plural}"))
                            && resource_segments(object_path).len() == 4)
                })
                .map(|(_, object)| object.clone())
                .collect();
            (
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": store.resource_version.to_string()}, "items": items}),
            )
        }
        ("DELETE", 2 | 4) => {
            if store.delete(path) {
                status(200, "", "deleted")
            } else {
                status(404, "NotFound", &format!("{path} not found"))
            }
        }
        _ => status(400, "BadRequest", "unexpected request"),
    }
}

/// The status a Deployment controller writes, ready or not.
fn deployment_status(object: &Value, ready: bool) -> Value {
    let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = object["metadata"]["generation"].clone();
    if ready {
        json!({
            "observedGeneration": generation,
            "replicas": wanted, "updatedReplicas": wanted, "readyReplicas": wanted, "availableReplicas": wanted,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet has successfully progressed."},
            ],
        })
    } else {
        json!({
            "observedGeneration": generation,
            "replicas": wanted, "updatedReplicas": wanted, "unavailableReplicas": wanted,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "ReplicaSet is progressing."},
            ],
        })
    }
}

/// A JSON merge patch (RFC 7386): maps merge, `null` deletes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in patch {
        if value.is_null() {
            if let Some(map) = target.as_object_mut() {
                map.remove(key);
            }
        } else {
            merge(&mut target[key.as_str()], value);
        }
    }
}
