//! Istio's published Bookinfo configs must all parse and validate, and decode to the values
//! written in them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::time::Duration;

use lateen_api::{Kind, Resource, Severity, load, parse};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/istio/samples/bookinfo")
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn load_file(name: &str) -> Vec<Resource> {
    let path = fixtures().join("networking").join(name);
    match load(&read(&path), name) {
        Ok(loaded) => loaded.resources().cloned().collect(),
        Err(e) => panic!("{name} rejected:\n{e}"),
    }
}

#[test]
fn every_networking_fixture_parses_and_validates() {
    let dir = fixtures().join("networking");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the Bookinfo networking samples, found {}",
        files.len()
    );
    let mut total = 0;
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match load(&read(&path), &name) {
            Ok(loaded) => {
                assert!(!loaded.documents.is_empty(), "{name}: no resources");
                // Istio's own sample keeps a second rule after a match-all one; Istio warns too.
                for w in &loaded.warnings {
                    let expected = name == "fault-injection-details-v1.yaml"
                        && w.to_string().contains("spec.http[1]: virtualService rule #1 not used (only the last rule can have no matches)");
                    assert!(expected, "{name}: unexpected warning {w}");
                }
                total += loaded.documents.len();
            }
            Err(e) => panic!("{name} rejected:\n{e}"),
        }
    }
    assert!(total >= 30, "only {total} resources");
}

#[test]
fn weights_subsets_and_ports_decode() {
    let resources = load_file("virtual-service-reviews-80-20.yaml");
    let vs = resources[0].as_virtual_service().expect("a VirtualService");
    assert_eq!(vs.name(), "reviews");
    assert_eq!(vs.namespace(), "default");
    assert_eq!(vs.spec.hosts, ["reviews"]);
    let routes = &vs.spec.http[0].route;
    assert_eq!(
        routes.iter().map(|r| r.weight).collect::<Vec<_>>(),
        [80, 20]
    );
    let subsets: Vec<_> = routes
        .iter()
        .map(|r| r.destination.as_ref().and_then(|d| d.subset.clone()))
        .collect();
    assert_eq!(subsets, [Some("v1".into()), Some("v2".into())]);

    let resources = load_file("bookinfo-gateway.yaml");
    let gw = resources[0].as_gateway().expect("a Gateway");
    assert_eq!(
        gw.spec.selector.get("istio").map(String::as_str),
        Some("ingressgateway")
    );
    assert_eq!(
        gw.spec.servers[0].port.as_ref().map(|p| p.number),
        Some(8080)
    );
    let vs = resources[1].as_virtual_service().expect("a VirtualService");
    let m = &vs.spec.http[0].matches;
    assert_eq!(m.len(), 5);
    assert_eq!(
        m[0].uri.as_ref().and_then(|u| u.exact.as_deref()),
        Some("/productpage")
    );
    assert_eq!(
        m[1].uri.as_ref().and_then(|u| u.prefix.as_deref()),
        Some("/static")
    );
    let dest = vs.spec.http[0].route[0]
        .destination
        .as_ref()
        .expect("destination");
    assert_eq!(dest.port_number(), Some(9080));
}

#[test]
fn faults_decode() {
    let resources = load_file("virtual-service-ratings-test-delay.yaml");
    let vs = resources[0].as_virtual_service().expect("a VirtualService");
    let delay = vs.spec.http[0]
        .fault
        .as_ref()
        .and_then(|f| f.delay.as_ref())
        .expect("delay");
    assert_eq!(delay.fixed_delay, Some(Duration::from_secs(7)));
    assert_eq!(delay.percentage.map(|p| p.value), Some(100.0));
    let header = &vs.spec.http[0].matches[0].headers["end-user"];
    assert_eq!(header.exact.as_deref(), Some("jason"));

    let resources = load_file("fault-injection-details-v1.yaml");
    let vs = resources[0].as_virtual_service().expect("a VirtualService");
    let abort = vs.spec.http[0]
        .fault
        .as_ref()
        .and_then(|f| f.abort.as_ref())
        .expect("abort");
    assert_eq!(abort.http_status, Some(555));
    assert_eq!(resources[1].kind(), Kind::DestinationRule);
}

#[test]
fn destination_rules_decode() {
    let resources = load_file("destination-rule-all-mtls.yaml");
    assert_eq!(resources.len(), 4);
    let ratings = resources
        .iter()
        .filter_map(Resource::as_destination_rule)
        .find(|d| d.name() == "ratings")
        .expect("ratings rule");
    assert_eq!(ratings.spec.subsets.len(), 4);
    assert_eq!(
        ratings
            .spec
            .subset("v2-mysql-vm")
            .map(|s| s.labels["version"].as_str()),
        Some("v2-mysql-vm")
    );
    let tls = ratings
        .spec
        .traffic_policy
        .as_ref()
        .and_then(|t| t.tls.as_ref())
        .expect("tls");
    assert_eq!(
        tls.mode(),
        lateen_api::networking::ClientTlsMode::IstioMutual
    );

    let resources = load_file("egress-rule-google-apis.yaml");
    let se = resources[0].as_service_entry().expect("a ServiceEntry");
    assert_eq!(
        se.spec.resolution(),
        lateen_api::networking::Resolution::Dns
    );
    assert_eq!(se.spec.ports[1].protocol, "HTTPS");
    let dr = resources[2]
        .as_destination_rule()
        .expect("a DestinationRule");
    let policy = dr.spec.traffic_policy.as_ref().expect("policy");
    let port443 = policy.port_settings(443).expect("port 443 settings");
    assert_eq!(
        port443.tls.as_ref().map(|t| t.mode()),
        Some(lateen_api::networking::ClientTlsMode::Simple)
    );
}

#[test]
fn kubernetes_objects_are_skipped_with_warnings() {
    let path = fixtures().join("platform/kube/bookinfo.yaml");
    let parsed = parse(&read(&path), "bookinfo.yaml");
    assert!(parsed.documents.is_empty());
    assert!(!parsed.problems.is_empty());
    for p in &parsed.problems {
        assert_eq!(p.severity, Severity::Warning, "{p}");
        assert!(
            p.message.contains("not an Istio configuration resource"),
            "{p}"
        );
    }
}
