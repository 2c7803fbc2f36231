//! Istio's rules that its corpus does not cover, each held to Istio's verdict (facts from
//! `pkg/config/validation` at the corpus's commit): client TLS `insecureSkipVerify`
//! combinations, partial wildcard hosts on Gateways and Sidecars, the `istio.io/dry-run`
//! annotation and Istio's internal annotations.
//!
//! Run: `cargo test -p lateen-api --test istio_rules` (well under a second).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_api::load;

/// `Ok(warnings)` or `Err(errors)`, as text.
fn verdict(yaml: &str) -> Result<String, String> {
    match load(yaml, "case.yaml") {
        Ok(loaded) => Ok(loaded
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")),
        Err(e) => Err(e.to_string()),
    }
}

fn destination_rule_tls(tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: ext}}
spec:
  host: ext.example.com
  trafficPolicy:
    tls: {tls}
"
    )
}

#[test]
fn insecure_skip_verify_refuses_what_to_verify_against() {
    for bad in [
        "{mode: SIMPLE, insecureSkipVerify: true, caCertificates: /etc/ca.pem}",
        "{mode: SIMPLE, insecureSkipVerify: true, credentialName: ext-ca}",
        "{mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [ext.example.com]}",
        "{mode: MUTUAL, insecureSkipVerify: true, clientCertificate: /c, privateKey: /k, caCertificates: /ca}",
        "{mode: MUTUAL, insecureSkipVerify: true, credentialName: c, subjectAltNames: [x]}",
    ] {
        let err = verdict(&destination_rule_tls(bad)).expect_err(bad);
        assert!(err.contains("insecureSkipVerify"), "{bad}: {err}");
    }
    for ok in [
        "{mode: SIMPLE, insecureSkipVerify: true}",
        "{mode: SIMPLE, insecureSkipVerify: false, caCertificates: /etc/ca.pem}",
        "{mode: MUTUAL, insecureSkipVerify: true, credentialName: client-and-ca}",
        "{mode: MUTUAL, insecureSkipVerify: true, clientCertificate: /c, privateKey: /k}",
    ] {
        verdict(&destination_rule_tls(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn gateway_and_sidecar_hosts_refuse_partial_wildcards_and_short_names() {
    let gateway = |host: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [\"{host}\"]
"
        )
    };
    for bad in [
        "*foo.example.com",
        "ns/*-foo.example.com",
        "foo.*",
        "reviews",
    ] {
        let err = verdict(&gateway(bad)).expect_err(bad);
        assert!(err.contains("spec.servers[0].hosts[0]"), "{bad}: {err}");
    }
    for ok in [
        "*",
        "*.example.com",
        "ns/www.example.com",
        "./*",
        "192.0.2.1",
    ] {
        verdict(&gateway(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let sidecar = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress:
  - hosts: [\"./*foo.example.com\"]
";
    let err = verdict(sidecar).expect_err("partial wildcard in a sidecar");
    assert!(err.contains("partial wildcard"), "{err}");
}

fn authz(annotations: &str, action: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p
  annotations: {annotations}
spec:
  action: {action}
  rules: [{{}}]
"
    )
}

#[test]
fn dry_run_annotation_follows_istio() {
    let warnings = verdict(&authz("{istio.io/dry-run: \"true\"}", "DENY")).expect("dry-run DENY");
    assert!(
        warnings.contains("istio.io/dry-run") && warnings.contains("not yet acted on"),
        "{warnings}"
    );
    verdict(&authz("{istio.io/dry-run: \"False\"}", "ALLOW")).expect("dry-run False");
    let err = verdict(&authz("{istio.io/dry-run: \"maybe\"}", "ALLOW")).expect_err("bad bool");
    assert!(err.contains("invalid value"), "{err}");
    let err = verdict(&authz("{istio.io/dry-run: \"true\"}", "AUDIT")).expect_err("AUDIT");
    assert!(err.contains("only supports action ALLOW/DENY"), "{err}");
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: r
  annotations: {istio.io/dry-run: \"true\"}
spec:
  hosts: [r]
  http: [{route: [{destination: {host: r}}]}]
";
    let err = verdict(vs).expect_err("dry-run on a VirtualService");
    assert!(
        err.contains("unsupported annotation istio.io/dry-run"),
        "{err}"
    );
    let err = verdict(&authz("{internal.istio.io/parents: x}", "ALLOW")).expect_err("internal");
    assert!(err.contains("may not be set by users"), "{err}");
}
