//! The rendered objects: which exist per profile, their order, labels, webhook selectors, and
//! the component `k8s` settings and overlays applied to them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_install::{InputFile, Inputs, RenderedObject, merge_inputs, profiles, render};
use serde_json::{Value, json};

fn objects(files: &[&str], sets: &[&str]) -> Vec<RenderedObject> {
    let inputs = Inputs {
        profile: None,
        files: files
            .iter()
            .enumerate()
            .map(|(i, text)| InputFile {
                name: format!("file{i}.yaml"),
                text: (*text).to_owned(),
            })
            .collect(),
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
    };
    let merged = merge_inputs(&inputs).unwrap_or_else(|err| panic!("{err}"));
    render(&merged.operator).unwrap_or_else(|err| panic!("{err}"))
}

fn find<'a>(objects: &'a [RenderedObject], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .map(|o| &o.object)
        .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", names(objects)))
}

fn names(objects: &[RenderedObject]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}", o.kind(), o.name()))
        .collect()
}

fn has(objects: &[RenderedObject], kind: &str, name: &str) -> bool {
    objects.iter().any(|o| o.kind() == kind && o.name() == name)
}

const ORDER: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

#[test]
fn every_profile_renders_in_apply_order_with_istio_labels() {
    for profile in profiles::SUPPORTED {
        let rendered = objects(&[], &[&format!("profile={profile}")]);
        let ranks: Vec<usize> = rendered
            .iter()
            .map(|o| {
                ORDER
                    .iter()
                    .position(|k| *k == o.kind())
                    .unwrap_or_else(|| panic!("unexpected kind {}", o.kind()))
            })
            .collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]),
            "{profile}: {:?}",
            names(&rendered)
        );
        for object in rendered.iter().filter(|o| o.kind() != "Namespace") {
            let labels = &object.object["metadata"]["labels"];
            assert_eq!(
                labels["istio.io/rev"],
                json!("default"),
                "{profile} {}",
                object.name()
            );
            assert_eq!(
                labels["operator.istio.io/component"],
                json!(object.component)
            );
            assert!(labels["install.operator.istio.io/owning-resource"].is_string());
        }
    }
}

#[test]
fn default_profile_has_control_plane_and_ingress() {
    let rendered = objects(&[], &[]);
    assert!(has(&rendered, "Namespace", "istio-system"));
    assert!(has(
        &rendered,
        "CustomResourceDefinition",
        "virtualservices.networking.istio.io"
    ));
    assert!(has(&rendered, "ConfigMap", "istio"));
    assert!(has(&rendered, "ConfigMap", "istio-sidecar-injector"));
    assert!(has(&rendered, "HorizontalPodAutoscaler", "lateend"));
    assert!(has(&rendered, "PodDisruptionBudget", "lateend"));
    assert!(has(
        &rendered,
        "ValidatingWebhookConfiguration",
        "istio-validator-istio-system"
    ));
    assert!(!has(&rendered, "Deployment", "istio-egressgateway"));

    let service = find(&rendered, "Service", "lateend");
    let ports: Vec<(String, i64, i64)> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["port"].as_i64().unwrap(),
                p["targetPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("grpc-xds".to_owned(), 15010, 15010),
            ("https-dns".to_owned(), 15012, 15012),
            ("http-monitoring".to_owned(), 15014, 15014),
            ("https-webhook".to_owned(), 443, 15017)
        ]
    );

    let control_plane = find(&rendered, "Deployment", "lateend");
    let container = &control_plane["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        json!(format!(
            "docker.io/lateen/lateend:{}",
            env!("CARGO_PKG_VERSION")
        ))
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        json!({"path": "/ready", "port": 8080})
    );
    assert_eq!(
        container["resources"]["requests"],
        json!({"cpu": "500m", "memory": "2Gi"})
    );
    assert_eq!(container["securityContext"]["runAsNonRoot"], json!(true));
    assert!(control_plane["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"].is_object());
    // The HPA owns the count.
    assert!(control_plane["spec"].get("replicas").is_none());

    let gateway = find(&rendered, "Deployment", "istio-ingressgateway");
    assert_eq!(
        gateway["metadata"]["labels"]["app"],
        json!("istio-ingressgateway")
    );
    assert_eq!(
        gateway["metadata"]["labels"]["istio"],
        json!("ingressgateway")
    );
    let proxy = &gateway["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        proxy["image"],
        json!(format!(
            "docker.io/lateen/proxy:{}",
            env!("CARGO_PKG_VERSION")
        ))
    );
    assert_eq!(proxy["command"], json!(["lateen-proxy"]));
    assert_eq!(proxy["args"][0], json!("router"));
    let gateway_service = find(&rendered, "Service", "istio-ingressgateway");
    assert_eq!(gateway_service["spec"]["type"], json!("LoadBalancer"));
    let service_ports: Vec<i64> = gateway_service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(service_ports, [15021, 80, 443]);
    assert_eq!(
        gateway_service["spec"]["selector"],
        json!({"app": "istio-ingressgateway", "istio": "ingressgateway"})
    );
    assert!(has(&rendered, "Role", "istio-ingressgateway-sds"));
    assert!(has(
        &rendered,
        "ServiceAccount",
        "istio-ingressgateway-service-account"
    ));

    let mesh: Value = serde_saphyr::from_str(
        find(&rendered, "ConfigMap", "istio")["data"]["mesh"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        mesh["defaultConfig"]["discoveryAddress"],
        json!("lateend.istio-system.svc:15012")
    );
    let values: Value = serde_json::from_str(
        find(&rendered, "ConfigMap", "istio-sidecar-injector")["data"]["values"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(values["global"]["hub"], json!("docker.io/lateen"));
}

fn selectors(webhook: &Value) -> (Value, Value) {
    (
        webhook["namespaceSelector"]["matchExpressions"].clone(),
        webhook["objectSelector"]["matchExpressions"].clone(),
    )
}

#[test]
fn injector_selectors_are_istios() {
    let rendered = objects(&[], &[]);
    let config = find(
        &rendered,
        "MutatingWebhookConfiguration",
        "istio-sidecar-injector",
    );
    let hooks = config["webhooks"].as_array().unwrap();
    let by_name = |name: &str| {
        hooks
            .iter()
            .find(|h| h["name"] == json!(name))
            .unwrap_or_else(|| panic!("no webhook {name}"))
    };
    assert_eq!(hooks.len(), 4);
    let not_false =
        json!({"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]});
    assert_eq!(
        selectors(by_name("rev.namespace.sidecar-injector.istio.io")),
        (
            json!([{"key": "istio.io/rev", "operator": "In", "values": ["default"]}, {"key": "istio-injection", "operator": "DoesNotExist"}]),
            json!([not_false])
        )
    );
    assert_eq!(
        selectors(by_name("rev.object.sidecar-injector.istio.io")),
        (
            json!([{"key": "istio.io/rev", "operator": "DoesNotExist"}, {"key": "istio-injection", "operator": "DoesNotExist"}]),
            json!([not_false, {"key": "istio.io/rev", "operator": "In", "values": ["default"]}])
        )
    );
    assert_eq!(
        selectors(by_name("namespace.sidecar-injector.istio.io")),
        (
            json!([{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]),
            json!([not_false])
        )
    );
    assert_eq!(
        selectors(by_name("object.sidecar-injector.istio.io")),
        (
            json!([{"key": "istio-injection", "operator": "DoesNotExist"}, {"key": "istio.io/rev", "operator": "DoesNotExist"}]),
            json!([{"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]}, {"key": "istio.io/rev", "operator": "DoesNotExist"}])
        )
    );
    for hook in hooks {
        assert_eq!(
            hook["clientConfig"]["service"],
            json!({"name": "lateend", "namespace": "istio-system", "path": "/inject", "port": 443})
        );
        assert_eq!(hook["rules"][0]["resources"], json!(["pods"]));
        assert_eq!(hook["failurePolicy"], json!("Fail"));
        assert_eq!(hook["sideEffects"], json!("None"));
        assert_eq!(hook["reinvocationPolicy"], json!("Never"));
        assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    }
}

/// Istio's two validators for the default revision: `rev.validation.istio.io` for objects
/// labelled `istio.io/rev=default`, `validation.istio.io` (istiod-default-validator) for every
/// object; Istio's groups, CREATE and UPDATE, `/validate`, fail-open until lateend is live.
#[test]
fn validators_are_istios() {
    let rendered = objects(&[], &[]);
    let revisioned = find(
        &rendered,
        "ValidatingWebhookConfiguration",
        "istio-validator-istio-system",
    );
    let default = find(
        &rendered,
        "ValidatingWebhookConfiguration",
        "istiod-default-validator",
    );
    let rev_hook = &revisioned["webhooks"][0];
    let default_hook = &default["webhooks"][0];
    assert_eq!(rev_hook["name"], json!("rev.validation.istio.io"));
    assert_eq!(
        rev_hook["objectSelector"],
        json!({"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["default"]}]})
    );
    assert_eq!(default_hook["name"], json!("validation.istio.io"));
    assert!(default_hook.get("objectSelector").is_none());
    for hook in [rev_hook, default_hook] {
        assert_eq!(
            hook["clientConfig"]["service"],
            json!({"name": "lateend", "namespace": "istio-system", "path": "/validate", "port": 443})
        );
        assert_eq!(
            hook["rules"],
            json!([{"operations": ["CREATE", "UPDATE"],
                    "apiGroups": ["security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io"],
                    "apiVersions": ["*"], "resources": ["*"]}])
        );
        assert_eq!(hook["failurePolicy"], json!("Ignore"));
        assert_eq!(hook["sideEffects"], json!("None"));
        assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    }
    let canary = objects(&[], &["revision=canary"]);
    assert!(!has(
        &canary,
        "ValidatingWebhookConfiguration",
        "istiod-default-validator"
    ));
    let off = objects(&[], &["values.global.configValidation=false"]);
    assert!(
        !off.iter()
            .any(|o| o.kind() == "ValidatingWebhookConfiguration")
    );
}

/// `enableNamespacesByDefault` adds Istio's `auto.` webhook beside the usual four;
/// `istiodRemote.injectionPath` and `reinvocationPolicy` are taken from the values.
#[test]
fn injector_options_from_values() {
    let rendered = objects(
        &[],
        &[
            "values.sidecarInjectorWebhook.enableNamespacesByDefault=true",
            "values.sidecarInjectorWebhook.reinvocationPolicy=IfNeeded",
            "values.istiodRemote.injectionPath=/inject/cluster/east/net/n1",
        ],
    );
    let config = find(
        &rendered,
        "MutatingWebhookConfiguration",
        "istio-sidecar-injector",
    );
    let hooks = config["webhooks"].as_array().unwrap();
    let names: Vec<&str> = hooks.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "rev.namespace.sidecar-injector.istio.io",
            "rev.object.sidecar-injector.istio.io",
            "namespace.sidecar-injector.istio.io",
            "object.sidecar-injector.istio.io",
            "auto.sidecar-injector.istio.io",
        ]
    );
    assert_eq!(
        selectors(&hooks[4]),
        (
            json!([{"key": "istio-injection", "operator": "DoesNotExist"}, {"key": "istio.io/rev", "operator": "DoesNotExist"},
                   {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "kube-public", "kube-node-lease", "local-path-storage"]}]),
            json!([{"key": "sidecar.istio.io/inject", "operator": "DoesNotExist"}, {"key": "istio.io/rev", "operator": "DoesNotExist"}])
        )
    );
    for hook in hooks {
        assert_eq!(
            hook["clientConfig"]["service"]["path"],
            json!("/inject/cluster/east/net/n1")
        );
        assert_eq!(hook["reinvocationPolicy"], json!("IfNeeded"));
    }
}

#[test]
fn a_revision_suffixes_names_and_selects_by_revision() {
    let rendered = objects(&[], &["revision=canary"]);
    assert!(has(&rendered, "Deployment", "lateend-canary"));
    assert!(has(&rendered, "Service", "lateend-canary"));
    assert!(has(&rendered, "ConfigMap", "istio-canary"));
    assert!(has(
        &rendered,
        "ValidatingWebhookConfiguration",
        "istio-validator-canary-istio-system"
    ));
    let config = find(
        &rendered,
        "MutatingWebhookConfiguration",
        "istio-sidecar-injector-canary",
    );
    let hooks = config["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        hooks[0]["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["canary"])
    );
    assert_eq!(
        hooks[0]["clientConfig"]["service"]["name"],
        json!("lateend-canary")
    );
    for object in &rendered {
        if object.kind() != "Namespace" {
            assert_eq!(
                object.object["metadata"]["labels"]["istio.io/rev"],
                json!("canary"),
                "{}",
                object.name()
            );
        }
    }
}

#[test]
fn demo_adds_egress_and_drops_autoscaling() {
    let rendered = objects(&[], &["profile=demo"]);
    assert!(has(&rendered, "Deployment", "istio-egressgateway"));
    assert!(
        !rendered
            .iter()
            .any(|o| o.kind() == "HorizontalPodAutoscaler")
    );
    let egress = find(&rendered, "Service", "istio-egressgateway");
    assert_eq!(egress["spec"]["type"], json!("ClusterIP"));
    assert_eq!(
        find(&rendered, "Deployment", "lateend")["spec"]["replicas"],
        json!(1)
    );
    let mesh = find(&rendered, "ConfigMap", "istio")["data"]["mesh"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(mesh.contains("accessLogFile: /dev/stdout"), "{mesh}");
}

#[test]
fn minimal_remote_and_empty_render_what_they_should() {
    let minimal = objects(&[], &["profile=minimal"]);
    assert!(has(&minimal, "Deployment", "lateend"));
    assert!(!minimal.iter().any(|o| o.component == "IngressGateways"));

    let remote = objects(
        &[],
        &[
            "profile=remote",
            "values.istiodRemote.injectionURL=https://cp.example:15017/inject",
        ],
    );
    assert!(!remote.iter().any(|o| o.kind() == "Deployment"));
    let injector = find(
        &remote,
        "MutatingWebhookConfiguration",
        "istio-sidecar-injector",
    );
    assert_eq!(
        injector["webhooks"][0]["clientConfig"],
        json!({"url": "https://cp.example:15017/inject"})
    );
    assert!(has(
        &remote,
        "CustomResourceDefinition",
        "destinationrules.networking.istio.io"
    ));

    assert!(objects(&[], &["profile=empty"]).is_empty());
}

const SETTINGS: &str = r#"
spec:
  components:
    pilot:
      k8s:
        replicaCount: 2
        env:
        - name: PILOT_TRACE_SAMPLING
          value: "5"
        - name: EXTRA
          value: "yes"
        nodeSelector:
          disk: ssd
        tolerations:
        - key: dedicated
          operator: Equal
          value: mesh
          effect: NoSchedule
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms:
              - matchExpressions:
                - key: zone
                  operator: In
                  values: [a]
        podAnnotations:
          team: mesh
        securityContext:
          fsGroup: 1337
        hpaSpec:
          minReplicas: 2
          maxReplicas: 9
        podDisruptionBudget:
          maxUnavailable: 1
        overlays:
        - kind: Deployment
          name: lateend
          patches:
          - path: spec.template.spec.containers.[name:discovery].args[1]
            value: --monitoringAddr=:9999
          - path: spec.template.metadata.labels.patched
            value: "yes"
        - kind: Service
          name: lateend
          patches:
          - path: spec.ports[3]
    ingressGateways:
    - name: istio-ingressgateway
      label:
        tier: edge
      k8s:
        service:
          type: NodePort
          ports:
          - name: http2
            port: 80
            targetPort: 8080
            nodePort: 30080
        serviceAnnotations:
          lb: internal
"#;

#[test]
fn component_k8s_settings_and_overlays_are_applied() {
    let rendered = objects(
        &[SETTINGS],
        &[
            "components.pilot.k8s.resources.limits.memory=3Gi",
            "values.global.imagePullSecrets[0]=registry-key",
        ],
    );
    let deployment = find(&rendered, "Deployment", "lateend");
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], json!(2));
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "registry-key"}])
    );
    let env = container["env"].as_array().unwrap();
    let value_of = |name: &str| {
        env.iter()
            .find(|e| e["name"] == json!(name))
            .map(|e| e["value"].clone())
    };
    assert_eq!(value_of("PILOT_TRACE_SAMPLING"), Some(json!("5")));
    assert_eq!(value_of("EXTRA"), Some(json!("yes")));
    assert_eq!(
        env.iter()
            .filter(|e| e["name"] == json!("PILOT_TRACE_SAMPLING"))
            .count(),
        1
    );
    assert_eq!(pod["spec"]["nodeSelector"], json!({"disk": "ssd"}));
    assert_eq!(pod["spec"]["tolerations"][0]["key"], json!("dedicated"));
    assert!(pod["spec"]["affinity"]["nodeAffinity"].is_object());
    assert_eq!(pod["spec"]["securityContext"], json!({"fsGroup": 1337}));
    assert_eq!(pod["metadata"]["annotations"]["team"], json!("mesh"));
    assert_eq!(container["resources"]["limits"]["memory"], json!("3Gi"));
    assert_eq!(container["args"][1], json!("--monitoringAddr=:9999"));
    assert_eq!(pod["metadata"]["labels"]["patched"], json!("yes"));
    assert_eq!(
        find(&rendered, "Service", "lateend")["spec"]["ports"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let hpa = find(&rendered, "HorizontalPodAutoscaler", "lateend");
    assert_eq!(
        (
            hpa["spec"]["minReplicas"].clone(),
            hpa["spec"]["maxReplicas"].clone()
        ),
        (json!(2), json!(9))
    );
    assert_eq!(
        find(&rendered, "PodDisruptionBudget", "lateend")["spec"]["maxUnavailable"],
        json!(1)
    );

    let service = find(&rendered, "Service", "istio-ingressgateway");
    assert_eq!(service["spec"]["type"], json!("NodePort"));
    assert_eq!(service["spec"]["ports"][0]["nodePort"], json!(30080));
    assert_eq!(service["metadata"]["annotations"]["lb"], json!("internal"));
    assert_eq!(service["spec"]["selector"]["tier"], json!("edge"));
}

#[test]
fn bad_overlays_and_unsupported_components_are_errors() {
    let inputs = |sets: &[&str], files: &[&str]| Inputs {
        profile: None,
        files: files
            .iter()
            .map(|t| InputFile {
                name: "f.yaml".into(),
                text: (*t).to_owned(),
            })
            .collect(),
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
    };
    let merged = merge_inputs(&inputs(&["components.cni.enabled=true"], &[])).unwrap();
    let message = render(&merged.operator).unwrap_err().to_string();
    assert!(message.contains("components.cni"), "{message}");

    let overlay = "spec:\n  components:\n    pilot:\n      k8s:\n        overlays:\n        - kind: Deployment\n          name: nope\n          patches: []\n";
    let merged = merge_inputs(&inputs(&[], &[overlay])).unwrap();
    let message = render(&merged.operator).unwrap_err().to_string();
    assert!(message.contains("Deployment/nope"), "{message}");

    let overlay = "spec:\n  components:\n    pilot:\n      k8s:\n        overlays:\n        - kind: Deployment\n          name: lateend\n          patches:\n          - path: spec.template.spec.containers.[name:missing].args\n            value: []\n";
    let merged = merge_inputs(&inputs(&[], &[overlay])).unwrap();
    let message = render(&merged.operator).unwrap_err().to_string();
    assert!(message.contains("missing"), "{message}");
}
