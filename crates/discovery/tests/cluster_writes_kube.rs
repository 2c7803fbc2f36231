//! lateend's cluster writers against a real API server (test-support's `TestCluster`), with the
//! RBAC `lateen install` renders: the default profile is applied as the admin, and the writers
//! act as lateend's ServiceAccount (a TokenRequest token), so a write the ClusterRole or Role
//! does not allow fails here as it would in a cluster.
//! - `status.validationMessages` (IST0106) written on a rejected VirtualService and cleared
//!   when it is no longer rejected.
//! - Lease election between two electors: one leads; the other takes over when the leader
//!   stops renewing (after the lease duration, by its own clock) or releases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use lateen_discovery::cluster_writes::status;
use lateen_discovery::cluster_writes::{Elector, LeaseTimings};
use lateen_discovery::kube::RejectedObject;
use lateen_test_support::kube::{TestCluster, client_for};
use lateen_test_support::wait::eventually;
use tokio::sync::watch;

const NS: &str = "istio-system";

/// Applies the default profile's objects as the admin; returns a client acting as lateend.
async fn install_and_act_as_lateend(cluster: &TestCluster) -> kube::Client {
    let merged = lateen_install::merge_inputs(&lateen_install::Inputs::default()).expect("merge");
    let objects = lateen_install::render(&merged.operator).expect("render");
    let scope = lateen_install::install_scope(&merged.operator);
    lateen_install::lifecycle::install(&cluster.client().await, &scope, "test", &objects)
        .await
        .expect("install");
    let token = cluster
        .service_account_token(NS, "lateend", &[])
        .expect("lateend's token");
    let kubeconfig = cluster.kubeconfig_for_token(&token).expect("kubeconfig");
    client_for(&kubeconfig).await.expect("client as lateend")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_leases_with_lateends_rbac() {
    let Some(cluster) = TestCluster::start_or_skip("cluster_writes_kube") else {
        return;
    };
    let lateend = install_and_act_as_lateend(&cluster).await;

    // A VirtualService the configuration source rejected.
    let vs = br#"{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}"#;
    let out = cluster.kubectl(&["create", "-f", "-"], Some(vs));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "virtualservices");
    let admin: Api<DynamicObject> =
        Api::namespaced_with(cluster.client().await, "default", &resource);
    let rejected = RejectedObject {
        kind: "VirtualService".into(),
        namespace: "default".into(),
        name: "reviews".into(),
        generation: Some(1),
        errors: vec![],
    };
    let (tx, rx) = watch::channel(Arc::new(vec![rejected]));
    let writer = tokio::spawn(status::run(lateend.clone(), rx));
    let status = eventually("IST0106 in status", Duration::from_secs(10), || async {
        let status = admin.get("reviews").await.ok()?.data["status"].clone();
        status["validationMessages"].is_array().then_some(status)
    })
    .await;
    assert_eq!(status["validationMessages"][0]["type"]["code"], "IST0106");
    assert_eq!(
        status["validationMessages"][0]["type"]["name"],
        "SchemaValidationError"
    );
    assert_eq!(status["validationMessages"][0]["level"], "ERROR");
    assert_eq!(status["observedGeneration"], "1");
    tx.send(Arc::new(vec![])).expect("writer listening");
    eventually(
        "validationMessages cleared",
        Duration::from_secs(10),
        || async {
            let status = admin.get("reviews").await.ok()?.data["status"].clone();
            status.get("validationMessages").is_none().then_some(())
        },
    )
    .await;
    writer.abort();

    // Two electors on one Lease, as two replicas (a 2 s lease, istiod's proportions).
    let timings = LeaseTimings::from_ttl(Duration::from_secs(2));
    let a = Arc::new(Elector::new(
        lateend.clone(),
        NS,
        "lateen-test-election",
        "replica-a",
        timings,
    ));
    let b = Arc::new(Elector::new(
        lateend.clone(),
        NS,
        "lateen-test-election",
        "replica-b",
        timings,
    ));
    let mut a_leads = a.leading();
    let run_a = tokio::spawn(a.clone().run());
    tokio::time::timeout(Duration::from_secs(5), a_leads.wait_for(|l| *l))
        .await
        .expect("a leads in time")
        .expect("a's elector runs");
    let mut b_leads = b.leading();
    let run_b = tokio::spawn(b.clone().run());
    tokio::time::sleep(timings.lease_duration + timings.retry).await;
    assert!(
        *a.leading().borrow() && !*b_leads.borrow(),
        "exactly one leads"
    );
    // a stops renewing without releasing (a crash): b takes over after the lease expires.
    let crashed = Instant::now();
    run_a.abort();
    tokio::time::timeout(Duration::from_secs(10), b_leads.wait_for(|l| *l))
        .await
        .expect("b takes over in time")
        .expect("b's elector runs");
    let waited = crashed.elapsed();
    println!("b took over {waited:?} after a stopped renewing");
    assert!(
        waited >= timings.lease_duration - timings.retry,
        "{waited:?}: too early"
    );
    run_b.abort();
    b.release().await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(lateend, NS);
    let lease = leases.get("lateen-test-election").await.expect("lease");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity), None, "released");
}
