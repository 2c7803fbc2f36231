//! Istio's injection decision, every combination of its inputs, against an oracle written as
//! Istio documents the rules (the API server's webhook selectors first, then the injector's
//! `injectRequired`), plus rows spelled out by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;

use lateen_inject::InjectConfig;
use lateen_inject::config::{InjectionPolicy, LabelSelector};
use lateen_inject::decision::{
    Decision, PodFacts, SkipReason, admission_decision, webhook_selects,
};

#[derive(Debug, Clone, Copy)]
struct Case {
    ns_injection: Option<&'static str>,
    ns_rev: Option<&'static str>,
    pod_label: Option<&'static str>,
    pod_annotation: Option<&'static str>,
    pod_rev: Option<&'static str>,
    policy: InjectionPolicy,
    host_network: bool,
    never_matches: bool,
    always_matches: bool,
    injector_rev: &'static str,
}

fn map(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect()
}

fn run(case: Case) -> Decision {
    let mut cfg = InjectConfig {
        policy: case.policy,
        revision: case.injector_rev.to_string(),
        ..InjectConfig::default()
    };
    let selector = |key: &str| LabelSelector {
        match_labels: [(key.to_string(), "yes".to_string())].into(),
        ..Default::default()
    };
    cfg.never_inject_selector = vec![selector("never")];
    cfg.always_inject_selector = vec![selector("always")];
    let ns_labels = map(&[
        ("istio-injection", case.ns_injection),
        ("istio.io/rev", case.ns_rev),
    ]);
    let labels = map(&[
        ("app", Some("x")),
        ("sidecar.istio.io/inject", case.pod_label),
        ("istio.io/rev", case.pod_rev),
        ("never", case.never_matches.then_some("yes")),
        ("always", case.always_matches.then_some("yes")),
    ]);
    let annotations = map(&[("sidecar.istio.io/inject", case.pod_annotation)]);
    let facts = PodFacts {
        namespace: "apps",
        labels: &labels,
        annotations: &annotations,
        host_network: case.host_network,
    };
    // Stage 1 is the API server's; stage 2 is all the webhook itself decides.
    if !webhook_selects(&ns_labels, &labels, case.injector_rev) {
        return Decision::Skip(SkipReason::NotSelected);
    }
    admission_decision(&cfg, &facts)
}

/// The rules in prose order. Webhook stage: `istio-injection` on the namespace wins over
/// `istio.io/rev`; only `enabled` selects, and only the default revision. A namespace
/// `istio.io/rev` selects its revision. With neither, a pod `istio.io/rev` selects its revision,
/// else a pod label `sidecar.istio.io/inject=true` selects the default revision. A pod label
/// `sidecar.istio.io/inject=false` is excluded by every webhook's object selector.
/// Injector stage: hostNetwork never; the pod label (else annotation) decides when it is exactly
/// `true` or `false` (another value is ignored, as Istio does); then neverInjectSelector,
/// alwaysInjectSelector; then the policy.
fn oracle(c: Case) -> Decision {
    let default_rev = |r: &str| r == "default" || r.is_empty();
    let selected = if c.pod_label == Some("false") {
        false
    } else if let Some(v) = c.ns_injection {
        v == "enabled" && default_rev(c.injector_rev)
    } else if let Some(r) = c.ns_rev {
        r == c.injector_rev || (default_rev(r) && default_rev(c.injector_rev))
    } else if let Some(r) = c.pod_rev {
        r == c.injector_rev || (default_rev(r) && default_rev(c.injector_rev))
    } else {
        c.pod_label == Some("true") && default_rev(c.injector_rev)
    };
    if !selected {
        return Decision::Skip(SkipReason::NotSelected);
    }
    if c.host_network {
        return Decision::Skip(SkipReason::HostNetwork);
    }
    match c.pod_label.or(c.pod_annotation) {
        Some("true") => return Decision::Inject,
        Some("false") => return Decision::Skip(SkipReason::PodOptOut),
        _ => {}
    }
    if c.never_matches {
        return Decision::Skip(SkipReason::NeverInjectSelector);
    }
    if c.always_matches {
        return Decision::Inject;
    }
    match c.policy {
        InjectionPolicy::Enabled => Decision::Inject,
        InjectionPolicy::Disabled => Decision::Skip(SkipReason::PolicyDisabled),
    }
}

#[test]
fn every_combination_matches_the_rules() {
    let ns_injection = [None, Some("enabled"), Some("disabled")];
    let revs = [None, Some("default"), Some("canary")];
    let flags = [None, Some("true"), Some("false"), Some("yes")];
    let mut count = 0;
    for a in ns_injection {
        for b in revs {
            for c in flags {
                for d in flags {
                    for e in revs {
                        for policy in [InjectionPolicy::Enabled, InjectionPolicy::Disabled] {
                            for host_network in [false, true] {
                                for never_matches in [false, true] {
                                    for always_matches in [false, true] {
                                        for injector_rev in ["default", "canary"] {
                                            let case = Case {
                                                ns_injection: a,
                                                ns_rev: b,
                                                pod_label: c,
                                                pod_annotation: d,
                                                pod_rev: e,
                                                policy,
                                                host_network,
                                                never_matches,
                                                always_matches,
                                                injector_rev,
                                            };
                                            assert_eq!(run(case), oracle(case), "{case:?}");
                                            count += 1;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(count, 3 * 3 * 4 * 4 * 3 * 2 * 2 * 2 * 2 * 2);
}

#[test]
fn rows_spelled_out() {
    let base = Case {
        ns_injection: Some("enabled"),
        ns_rev: None,
        pod_label: None,
        pod_annotation: None,
        pod_rev: None,
        policy: InjectionPolicy::Enabled,
        host_network: false,
        never_matches: false,
        always_matches: false,
        injector_rev: "default",
    };
    let rows: [(Case, Decision); 10] = [
        (base, Decision::Inject),
        (
            Case {
                ns_injection: Some("disabled"),
                pod_label: Some("true"),
                ..base
            },
            Decision::Skip(SkipReason::NotSelected),
        ),
        (
            Case {
                pod_label: Some("false"),
                ..base
            },
            Decision::Skip(SkipReason::NotSelected),
        ),
        (
            Case {
                pod_annotation: Some("false"),
                ..base
            },
            Decision::Skip(SkipReason::PodOptOut),
        ),
        (
            Case {
                pod_label: Some("true"),
                pod_annotation: Some("false"),
                ..base
            },
            Decision::Inject,
        ),
        (
            Case {
                host_network: true,
                pod_label: Some("true"),
                ..base
            },
            Decision::Skip(SkipReason::HostNetwork),
        ),
        (
            Case {
                policy: InjectionPolicy::Disabled,
                ..base
            },
            Decision::Skip(SkipReason::PolicyDisabled),
        ),
        (
            Case {
                policy: InjectionPolicy::Disabled,
                always_matches: true,
                ..base
            },
            Decision::Inject,
        ),
        (
            Case {
                never_matches: true,
                always_matches: true,
                ..base
            },
            Decision::Skip(SkipReason::NeverInjectSelector),
        ),
        (
            Case {
                ns_injection: None,
                ns_rev: Some("canary"),
                injector_rev: "canary",
                ..base
            },
            Decision::Inject,
        ),
    ];
    for (case, expected) in rows {
        assert_eq!(run(case), expected, "{case:?}");
    }
    let no_labels = Case {
        ns_injection: None,
        ..base
    };
    assert_eq!(run(no_labels), Decision::Skip(SkipReason::NotSelected));
    assert_eq!(
        run(Case {
            pod_label: Some("true"),
            ..no_labels
        }),
        Decision::Inject
    );
    assert_eq!(
        run(Case {
            pod_rev: Some("canary"),
            injector_rev: "canary",
            ..no_labels
        }),
        Decision::Inject
    );
    assert_eq!(
        run(Case {
            pod_rev: Some("canary"),
            ..no_labels
        }),
        Decision::Skip(SkipReason::NotSelected)
    );
}

#[test]
fn ignored_namespaces_and_injected_pods_are_skipped() {
    let cfg = InjectConfig::default();
    let labels = BTreeMap::new();
    let none = BTreeMap::new();
    let facts = PodFacts {
        namespace: "kube-system",
        labels: &labels,
        annotations: &none,
        host_network: false,
    };
    assert_eq!(
        admission_decision(&cfg, &facts),
        Decision::Skip(SkipReason::IgnoredNamespace)
    );
    let injected = map(&[("sidecar.istio.io/status", Some("{}"))]);
    let facts = PodFacts {
        namespace: "apps",
        labels: &labels,
        annotations: &injected,
        host_network: false,
    };
    assert_eq!(
        admission_decision(&cfg, &facts),
        Decision::Skip(SkipReason::AlreadyInjected)
    );
}

/// Istio accepts only `"true"` and `"false"`: `"no"` or `"False"` fall back to the policy
/// (the pod is injected when the policy is enabled), and a label wins over the annotation even
/// when it is empty.
#[test]
fn only_true_and_false_are_choices() {
    let cfg = InjectConfig::default();
    let none = BTreeMap::new();
    for value in ["no", "False", "off", "y"] {
        let labels = map(&[("sidecar.istio.io/inject", Some(value))]);
        let facts = PodFacts {
            namespace: "apps",
            labels: &labels,
            annotations: &none,
            host_network: false,
        };
        assert_eq!(
            admission_decision(&cfg, &facts),
            Decision::Inject,
            "{value}"
        );
    }
    let labels = map(&[("sidecar.istio.io/inject", Some(""))]);
    let annotations = map(&[("sidecar.istio.io/inject", Some("false"))]);
    let facts = PodFacts {
        namespace: "apps",
        labels: &labels,
        annotations: &annotations,
        host_network: false,
    };
    assert_eq!(admission_decision(&cfg, &facts), Decision::Inject);
}
