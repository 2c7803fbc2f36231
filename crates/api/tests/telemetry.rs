//! The Telemetry kind (`telemetry.istio.io` v1 and v1alpha1) and the MeshConfig providers it
//! names: Istio's own CRD test documents (pkg/config/validation/testdata/crds/telemetry-*.yaml)
//! accepted and refused as Istio does, field paths in the errors, and typed provider bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_api::mesh_providers::TypedProvider;
use lateen_api::telemetry::{TagOperation, WorkloadMode};
use lateen_api::{Kind, load, load_mesh_config};

/// Istio's `telemetry-valid.yaml` (three documents, v1alpha1).
const ISTIO_VALID: &str = r#"apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata:
  name: full
spec:
  metrics:
  - providers:
    - name: prometheus
    reportingInterval: 5s
    overrides:
    - tagOverrides:
        request_method:
          value: "request.method"
        request_host:
          value: "request.host"
      match:
        customMetric: "foo"
      disabled: false
    - match:
        metric: GRPC_REQUEST_MESSAGES
      disabled: true
  accessLogging:
  - disabled: false
    filter:
      expression: 'true'
    match:
      mode: CLIENT
    providers:
    - name: stdout
  tracing:
  - providers:
    - name: otlp
    match:
      mode: CLIENT_AND_SERVER
    randomSamplingPercentage: 54.54
    useRequestIdForTraceSampling: true
    disableSpanReporting: false
    customTags:
      env:
        environment:
          name: "NAME"
          defaultValue: "default"
      header:
        header:
          name: "x-name"
          defaultValue: "default name"
      literal:
        literal:
          value: "default literal"
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata:
  name: tag-upsert
spec:
  metrics:
  - overrides:
    - tagOverrides:
        foo:
          operation: UPSERT
          value: add
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata:
  name: tag-remove
spec:
  metrics:
  - overrides:
    - tagOverrides:
        foo:
          operation: REMOVE
"#;

#[test]
fn istios_valid_telemetry_documents_load_typed() {
    let loaded = load(ISTIO_VALID, "telemetry-valid.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.documents.len(), 3);
    let full = loaded.documents[0]
        .resource
        .as_telemetry()
        .expect("a Telemetry");
    assert_eq!(full.api_version, "telemetry.istio.io/v1alpha1");
    let log = &full.spec.access_logging[0];
    assert_eq!(log.mode(), WorkloadMode::Client);
    assert_eq!(log.providers[0].name, "stdout");
    assert_eq!(
        log.filter.as_ref().map(|f| f.expression.as_str()),
        Some("true")
    );
    let tracing = &full.spec.tracing[0];
    assert_eq!(tracing.random_sampling_percentage, Some(54.54));
    assert_eq!(
        tracing.custom_tags["header"]
            .header
            .as_ref()
            .map(|h| h.name.as_str()),
        Some("x-name")
    );
    let metrics = &full.spec.metrics[0];
    assert_eq!(metrics.overrides.len(), 2);
    assert_eq!(
        metrics.overrides[0].tag_overrides["request_method"].operation(),
        TagOperation::Upsert
    );
    let remove = loaded.documents[2]
        .resource
        .as_telemetry()
        .expect("Telemetry");
    assert_eq!(
        remove.spec.metrics[0].overrides[0].tag_overrides["foo"].operation(),
        TagOperation::Remove
    );
}

#[test]
fn v1_and_v1alpha1_read_into_the_same_kind() {
    for version in ["v1", "v1alpha1"] {
        let text = format!(
            "apiVersion: telemetry.istio.io/{version}\nkind: Telemetry\nmetadata: {{name: mesh-default, namespace: istio-system}}\nspec:\n  accessLogging:\n  - providers: [{{name: envoy}}]\n"
        );
        let loaded = load(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.documents[0].resource.kind(), Kind::Telemetry);
        assert_eq!(loaded.documents[0].resource.namespace(), "istio-system");
    }
    let wrong =
        "apiVersion: telemetry.istio.io/v2\nkind: Telemetry\nmetadata: {name: t}\nspec: {}\n";
    let err = load(wrong, "t.yaml").expect_err("v2 is no version of Telemetry");
    assert!(err.to_string().contains("unsupported apiVersion"), "{err}");
    assert_eq!(Kind::Telemetry.plural(), "telemetries");
    assert_eq!(Kind::Telemetry.api_version(), "telemetry.istio.io/v1");
}

/// Istio's `telemetry-invalid.yaml`, one case at a time, with the field each error names.
#[test]
fn istios_invalid_telemetry_documents_are_refused_with_the_field() {
    let cases = [
        (
            "metrics:\n  - providers:\n    - name: \"\"\n",
            "spec.metrics[0].providers[0].name: providers.name may not be empty",
        ),
        (
            "metrics:\n  - overrides:\n    - match:\n        customMetric: \"\"\n",
            "spec.metrics[0].overrides[0].match.customMetric: customMetric may not be empty",
        ),
        (
            "metrics:\n  - overrides:\n    - tagOverrides:\n        foo:\n          operation: UPSERT\n",
            "spec.metrics[0].overrides[0].tagOverrides.foo.value: tagOverrides.value must be set when operation is UPSERT",
        ),
        (
            "metrics:\n  - overrides:\n    - tagOverrides:\n        foo:\n          operation: REMOVE\n          value: oops\n",
            "tagOverrides.value may only be set when operation is UPSERT",
        ),
        (
            "accessLogging:\n  - filter:\n      expression: 'response.code >='\n",
            "spec.accessLogging[0].filter.expression: must be a valid CEL expression",
        ),
        (
            "tracing:\n  - randomSamplingPercentage: 101\n",
            "spec.tracing[0].randomSamplingPercentage: randomSamplingPercentage must be in range [0.0, 100.0]",
        ),
        (
            "tracing:\n  - customTags:\n      t:\n        literal:\n          value: \"\"\n",
            "literal tag value may not be empty",
        ),
        (
            "selector:\n    matchLabels: {app: a}\n  targetRefs:\n  - {kind: Service, name: a}\n",
            "only one of targetRefs or workloadSelector can be set",
        ),
        (
            "accessLogging:\n  - providers: [{name: envoy}]\n    match: {mode: SIDEWAYS}\n",
            "spec.accessLogging[0].match.mode: unknown variant `SIDEWAYS`",
        ),
    ];
    for (spec, expected) in cases {
        let text = format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: bad}}\nspec:\n  {spec}"
        );
        let err = load(&text, "bad.yaml").expect_err(expected).to_string();
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
        assert!(err.contains("Telemetry default/bad"), "{err}");
    }
}

#[test]
fn mesh_config_access_log_settings_and_typed_providers() {
    let (mesh, warnings) = load_mesh_config(
        r#"
accessLogFile: /dev/stdout
accessLogEncoding: JSON
accessLogFormat: '{"code":"%RESPONSE_CODE%"}'
defaultProviders:
  accessLogging: [envoy, otel-als]
extensionProviders:
- name: text-file
  envoyFileAccessLog:
    path: /tmp/access.log
    logFormat:
      text: "%REQ(:METHOD)% %RESPONSE_CODE%\n"
- name: json-file
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat:
      labels:
        code: "%RESPONSE_CODE%"
- name: otel-als
  envoyOtelAls: {service: otel.observability.svc.cluster.local, port: 4317}
- name: otel
  opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}
- name: prom
  prometheus: {}
"#,
        "mesh.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(mesh.access_log_file.as_deref(), Some("/dev/stdout"));
    assert_eq!(
        mesh.access_log_encoding(),
        lateen_api::mesh::AccessLogEncoding::Json
    );
    let typed = |name: &str| {
        mesh.extension_provider(name)
            .expect("declared")
            .typed()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    match typed("text-file") {
        TypedProvider::EnvoyFileAccessLog(f) => {
            assert_eq!(f.path, "/tmp/access.log");
            assert_eq!(
                f.log_format.and_then(|l| l.text).as_deref(),
                Some("%REQ(:METHOD)% %RESPONSE_CODE%\n")
            );
        }
        other => panic!("{other:?}"),
    }
    match typed("json-file") {
        TypedProvider::EnvoyFileAccessLog(f) => {
            let labels = f.log_format.and_then(|l| l.labels).expect("labels");
            assert_eq!(labels["code"], "%RESPONSE_CODE%");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(typed("otel-als"), TypedProvider::EnvoyOtelAls(p) if p.port == 4317));
    assert!(matches!(typed("otel"), TypedProvider::OpenTelemetry(p) if p.port == 4317));
    assert_eq!(typed("prom"), TypedProvider::Prometheus);

    let bad = "extensionProviders:\n- name: f\n  envoyFileAccessLog: {path: /tmp/x, logFormat: {txt: x}}\n";
    let err = load_mesh_config(bad, "mesh.yaml").expect_err("txt is no field");
    assert!(
        err.to_string().contains(
            "extensionProviders[0]: envoyFileAccessLog.logFormat.txt: unknown field `txt`"
        ),
        "{err}"
    );
}
