//! Install, verify and uninstall against a stub Kubernetes API server on 127.0.0.1 that keeps
//! objects in memory and answers server-side apply, get and delete as the real one does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lateen_install::cluster::{self, FIELD_MANAGER, Target};
use lateen_install::{Inputs, RenderedObject, merge_inputs, render};
use serde_json::{Value, json};

#[derive(Default)]
struct Store {
    /// Objects by URL path.
    objects: BTreeMap<String, Value>,
    /// Every request, as `METHOD path`.
    log: Vec<String>,
    /// Apply requests that were not a forced server-side apply by our field manager.
    bad_applies: Vec<String>,
}

type Shared = Arc<Mutex<Store>>;

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn not_found(path: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
    )
}

async fn handle(
    store: Shared,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut store = store.lock().unwrap();
    store.log.push(format!("{method} {path}"));
    let response = match method {
        Method::PATCH => {
            if content_type != "application/apply-patch+yaml"
                || !query.contains(&format!("fieldManager={FIELD_MANAGER}"))
                || !query.contains("force=true")
            {
                store
                    .bad_applies
                    .push(format!("{path}?{query} ({content_type})"));
            }
            match serde_json::from_slice::<Value>(&body) {
                Ok(mut object) => {
                    object["metadata"]["resourceVersion"] = json!("1");
                    store.objects.insert(path, object.clone());
                    respond(StatusCode::OK, &object)
                }
                Err(err) => respond(
                    StatusCode::BAD_REQUEST,
                    &json!({"kind": "Status", "code": 400, "message": err.to_string()}),
                ),
            }
        }
        Method::GET => match store.objects.get(&path) {
            Some(object) => respond(StatusCode::OK, object),
            None => not_found(&path),
        },
        Method::DELETE => match store.objects.remove(&path) {
            Some(_) => respond(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            ),
            None => not_found(&path),
        },
        _ => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"kind": "Status", "code": 405}),
        ),
    };
    Ok(response)
}

/// Starts the stub on an ephemeral 127.0.0.1 port; it lives as long as the test's runtime.
async fn start_stub() -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let store: Shared = Arc::default();
    let shared = store.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = shared.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| handle(store.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{address}"), store)
}

fn demo_objects() -> Vec<RenderedObject> {
    let inputs = Inputs {
        profile: Some("demo".into()),
        ..Inputs::default()
    };
    render(&merge_inputs(&inputs).unwrap().operator).unwrap()
}

fn path_of(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap();
    let name = object["metadata"]["name"].as_str().unwrap();
    let api_version = object["apiVersion"].as_str().unwrap();
    let plural = match kind {
        "Namespace" => "namespaces".to_owned(),
        "PodDisruptionBudget" => "poddisruptionbudgets".to_owned(),
        "ClusterRole" => "clusterroles".to_owned(),
        other => format!("{}s", other.to_lowercase()),
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

#[tokio::test(flavor = "current_thread")]
async fn install_verify_uninstall_against_a_stub_api_server() {
    let (server, store) = start_stub().await;
    let target = Target {
        server: Some(server),
        ..Target::default()
    };
    let client = cluster::client(&target).await.unwrap();
    let objects = demo_objects();

    // Install: every object is server-side applied, in render order.
    let applied = cluster::apply(&client, &objects).await.unwrap();
    assert_eq!(applied.len(), objects.len());
    {
        let store = store.lock().unwrap();
        assert!(store.bad_applies.is_empty(), "{:?}", store.bad_applies);
        for object in &objects {
            let path = path_of(&object.object);
            assert!(store.objects.contains_key(&path), "{path} not applied");
        }
        let first_webhook = store
            .log
            .iter()
            .position(|l| l.contains("webhookconfigurations"))
            .unwrap();
        let last_crd = store
            .log
            .iter()
            .rposition(|l| l.contains("customresourcedefinitions"))
            .unwrap();
        let first_deployment = store
            .log
            .iter()
            .position(|l| l.contains("/deployments/"))
            .unwrap();
        assert!(
            last_crd < first_deployment && first_deployment < first_webhook,
            "{:?}",
            store.log
        );
        assert!(
            store.log[0].starts_with("PATCH /api/v1/namespaces/istio-system"),
            "{:?}",
            store.log[0]
        );
    }

    // Verify: everything exists, but no Deployment reports ready pods yet.
    let report = cluster::verify(&client, &objects).await.unwrap();
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    assert_eq!(report.not_ready.len(), 3, "{:?}", report.not_ready);
    assert!(!report.is_healthy());

    // The kubelet would set these; once ready, the install verifies.
    {
        let mut store = store.lock().unwrap();
        for (path, object) in store.objects.iter_mut() {
            if path.contains("/deployments/") {
                object["status"] = json!({"readyReplicas": 1});
            }
        }
    }
    let report = cluster::verify(&client, &objects).await.unwrap();
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.checked.len(), objects.len());

    // Applying again is idempotent.
    cluster::apply(&client, &objects).await.unwrap();

    // Uninstall keeps CRDs and the namespace; a second uninstall finds nothing left to delete.
    let deleted = cluster::uninstall(&client, &objects, false).await.unwrap();
    {
        let store = store.lock().unwrap();
        let kept: Vec<&String> = store.objects.keys().collect();
        assert!(
            kept.iter().all(|p| p.contains("customresourcedefinitions")
                || p == &"/api/v1/namespaces/istio-system"),
            "{kept:?}"
        );
        assert_eq!(
            kept.len(),
            1 + objects
                .iter()
                .filter(|o| o.kind() == "CustomResourceDefinition")
                .count()
        );
        let first_delete = store
            .log
            .iter()
            .position(|l| l.starts_with("DELETE"))
            .unwrap();
        assert!(
            store.log[first_delete].contains("validatingwebhookconfigurations"),
            "webhooks go first"
        );
    }
    let kept_kinds = objects
        .iter()
        .filter(|o| matches!(o.kind(), "CustomResourceDefinition" | "Namespace"))
        .count();
    assert_eq!(deleted.len() + kept_kinds, objects.len());
    assert!(
        cluster::uninstall(&client, &objects, false)
            .await
            .unwrap()
            .is_empty()
    );
    let report = cluster::verify(&client, &objects).await.unwrap();
    assert!(
        report
            .missing
            .iter()
            .any(|m| m == "Deployment/istio-system/lateend"),
        "{report:?}"
    );

    // Purge removes the rest.
    cluster::uninstall(&client, &objects, true).await.unwrap();
    assert!(store.lock().unwrap().objects.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_api_server_is_a_clear_error() {
    // Bind and drop a listener to get a local port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = Target {
        server: Some(format!("http://127.0.0.1:{port}")),
        ..Target::default()
    };
    let client = cluster::client(&target).await.unwrap();
    let message = cluster::apply(&client, &demo_objects())
        .await
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("Namespace/istio-system: "), "{message}");
}
