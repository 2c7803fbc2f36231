//! Install, verify and uninstall against a stub Kubernetes API server on 127.0.0.1 that keeps
//! objects in memory and answers server-side apply, get and delete as the real one does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

#[path = "support/stub_api.rs"]
mod stub_api;

use lateen_install::cluster::{self, Target};
use lateen_install::{Inputs, RenderedObject, merge_inputs, render};
use stub_api::path_of;

fn demo_objects() -> Vec<RenderedObject> {
    let inputs = Inputs {
        profile: Some("demo".into()),
        ..Inputs::default()
    };
    render(&merge_inputs(&inputs).unwrap().operator).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn install_verify_uninstall_against_a_stub_api_server() {
    // Deployments are not ready on their first read, ready from the second on.
    let (server, store) = stub_api::start(1);
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

    // The Deployment controller reports them ready on the next read.
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
