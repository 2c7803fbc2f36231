//! AuthorizationPolicy → Envoy RBAC filters on a sidecar's inbound chains, as istiod's
//! `pilot/pkg/security/authz/builder`: one filter per action present, in the order AUDIT
//! (`LOG`), DENY, ALLOW, so a DENY always wins over an ALLOW; policies named
//! `ns[NS]-policy[NAME]-rule[N]`; `istio.io/dry-run: "true"` policies go to `shadow_rules`
//! (stat prefix `istio_dry_run_allow_` / `istio_dry_run_deny_`), enforcing nothing; an ALLOW
//! policy without rules (allow-nothing) yields an ALLOW filter without policies, which
//! denies every request. HTTP chains get `envoy.filters.http.rbac` after the JWT filter
//! ([`super::jwt`]), TCP chains `envoy.filters.network.rbac` (stat prefix `tcp.`) before
//! the TCP proxy, with HTTP-only fields handled as istiod does ([`super::authz_rules`]).
//!
//! Which policies apply: those of the root namespace without a selector (mesh-wide), of
//! the proxy's namespace without a selector, and those whose `selector.matchLabels` match
//! the proxy's labels in either namespace. Policies with `targetRef(s)` attach to gateways
//! and waypoints, not sidecars, and are left out here. CUSTOM needs an extension provider
//! (`ext_authz`), which lateen does not configure: such a policy fails closed, its rules
//! deny (istiod's behaviour when a policy's provider is not found), with a warning;
//! validation warns that the action is not acted on.

use std::collections::HashMap;

use lateen_api::Object;
use lateen_api::security::{AuthorizationAction, AuthorizationPolicy};
use lateen_xds::pb::envoy::config::listener::v3::{Filter, filter};
use lateen_xds::pb::envoy::config::rbac::v3::{Policy, Rbac, rbac};
use lateen_xds::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use lateen_xds::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;

use super::Context;
use super::authz_rules::{Protocol, policy};
use super::names;
use crate::registry::labels_match;

pub const HTTP_RBAC_FILTER: &str = "envoy.filters.http.rbac";
pub const NETWORK_RBAC_FILTER: &str = "envoy.filters.network.rbac";
/// Istio's annotation turning a policy into a dry run.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// The label keys AuthorizationPolicy and RequestAuthentication selectors read.
pub fn selector_label_keys(config: &crate::store::Config) -> Vec<String> {
    let mut keys = Vec::new();
    for r in &config.resources {
        let selector = if let Some(ap) = r.as_authorization_policy() {
            ap.spec.selector.as_ref()
        } else if let Some(ra) = r.as_request_authentication() {
            ra.spec.selector.as_ref()
        } else {
            None
        };
        if let Some(s) = selector {
            keys.extend(s.match_labels.keys().cloned());
        }
    }
    keys
}

/// Whether a security policy of `namespace` with this selector applies to the proxy.
pub(super) fn selects(
    ctx: &Context<'_>,
    namespace: &str,
    selector: Option<&lateen_api::meta::LabelSelector>,
    has_target_refs: bool,
) -> bool {
    if has_target_refs {
        return false;
    }
    let in_scope = namespace == ctx.proxy.namespace || namespace == ctx.config.root_namespace();
    in_scope
        && selector.is_none_or(|s| {
            s.match_labels.is_empty() || labels_match(&s.match_labels, &ctx.proxy.labels)
        })
}

fn applicable<'a>(ctx: &Context<'a>) -> Vec<&'a Object<AuthorizationPolicy>> {
    ctx.config
        .resources
        .iter()
        .filter_map(|r| r.as_authorization_policy())
        .filter(|ap| {
            let targeted = ap.spec.target_ref.is_some() || !ap.spec.target_refs.is_empty();
            selects(ctx, ap.namespace(), ap.spec.selector.as_ref(), targeted)
        })
        .inspect(|ap| {
            if ap.spec.action() == AuthorizationAction::Custom {
                tracing::warn!(policy = %format!("{}/{}", ap.namespace(), ap.name()), "CUSTOM authorization needs an extension provider, which lateen does not configure; requests the policy matches are denied");
            }
        })
        .collect()
}

fn dry_run(ap: &Object<AuthorizationPolicy>) -> bool {
    ap.metadata
        .annotations
        .get(DRY_RUN_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The enforced and shadow rules of one action.
struct Built {
    rules: Option<Rbac>,
    shadow: Option<Rbac>,
    shadow_prefix: &'static str,
}

fn build(
    policies: &[&Object<AuthorizationPolicy>],
    action: AuthorizationAction,
    protocol: Protocol,
) -> Option<Built> {
    // CUSTOM without an extension provider fails closed: its rules deny, as istiod does when
    // a policy's provider is not found.
    let of_action: Vec<_> = policies
        .iter()
        .filter(|ap| {
            let own = ap.spec.action();
            own == action
                || (action == AuthorizationAction::Deny && own == AuthorizationAction::Custom)
        })
        .collect();
    if of_action.is_empty() {
        return None;
    }
    let envoy_action = match action {
        AuthorizationAction::Deny => rbac::Action::Deny,
        AuthorizationAction::Audit => rbac::Action::Log,
        _ => rbac::Action::Allow,
    };
    let drop_http = action != AuthorizationAction::Allow;
    let mut enforced: HashMap<String, Policy> = HashMap::new();
    let mut shadow: HashMap<String, Policy> = HashMap::new();
    let mut any_enforced = false;
    let mut any_shadow = false;
    for ap in of_action {
        let target = if dry_run(ap) {
            any_shadow = true;
            &mut shadow
        } else {
            any_enforced = true;
            &mut enforced
        };
        for (i, rule) in ap.spec.rules.iter().enumerate() {
            let name = format!("ns[{}]-policy[{}]-rule[{i}]", ap.namespace(), ap.name());
            if let Some(p) = policy(rule, ap.namespace(), protocol, drop_http) {
                target.insert(name, p);
            }
        }
    }
    let rbac = |policies| Rbac {
        action: envoy_action as i32,
        policies,
        ..Default::default()
    };
    Some(Built {
        rules: any_enforced.then(|| rbac(enforced)),
        shadow: any_shadow.then(|| rbac(shadow)),
        shadow_prefix: if action == AuthorizationAction::Deny {
            "istio_dry_run_deny_"
        } else {
            "istio_dry_run_allow_"
        },
    })
}

const ORDER: [AuthorizationAction; 3] = [
    AuthorizationAction::Audit,
    AuthorizationAction::Deny,
    AuthorizationAction::Allow,
];

/// The rules of each action present, in [`ORDER`].
fn built(ctx: &Context<'_>, protocol: Protocol) -> impl Iterator<Item = Built> {
    let policies = applicable(ctx);
    ORDER
        .into_iter()
        .filter_map(move |a| build(&policies, a, protocol))
}

impl Built {
    /// Set only when there are shadow rules, as istiod.
    fn shadow_stat_prefix(&self) -> String {
        if self.shadow.is_some() {
            self.shadow_prefix.to_string()
        } else {
            String::new()
        }
    }
}

/// The RBAC HTTP filters of the proxy's inbound HTTP chains (empty without policies).
pub fn http_filters(ctx: &Context<'_>) -> Vec<HttpFilter> {
    built(ctx, Protocol::Http)
        .map(|b| {
            let config = HttpRbac {
                shadow_rules_stat_prefix: b.shadow_stat_prefix(),
                rules: b.rules,
                shadow_rules: b.shadow,
                ..Default::default()
            };
            HttpFilter {
                name: HTTP_RBAC_FILTER.to_string(),
                config_type: Some(http_filter::ConfigType::TypedConfig(names::pack(&config))),
                ..Default::default()
            }
        })
        .collect()
}

/// The RBAC network filters of the proxy's inbound TCP chains (empty without policies).
pub fn network_filters(ctx: &Context<'_>) -> Vec<Filter> {
    built(ctx, Protocol::Tcp)
        .map(|b| {
            let config = NetworkRbac {
                stat_prefix: "tcp.".to_string(),
                shadow_rules_stat_prefix: b.shadow_stat_prefix(),
                rules: b.rules,
                shadow_rules: b.shadow,
                ..Default::default()
            };
            Filter {
                name: NETWORK_RBAC_FILTER.to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(names::pack(&config))),
            }
        })
        .collect()
}
