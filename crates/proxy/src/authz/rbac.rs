//! Envoy's RBAC filter (`envoy.filters.http.rbac`, `envoy.filters.network.rbac`): a policy
//! matches when one of its permissions and one of its principals match; an ALLOW filter lets
//! through what some policy matches, a DENY filter refuses it, a LOG filter only records.
//! Shadow rules (Istio's dry run) are evaluated for the log and never enforce.

use serde::{Deserialize, Serialize};

use super::matcher::{Attributes, Permission, Principal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Deny,
    Log,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub permissions: Vec<Permission>,
    pub principals: Vec<Principal>,
}

impl Policy {
    fn matches(&self, a: &Attributes<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(a))
            && self.principals.iter().any(|p| p.matches(a))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub action: Action,
    pub policies: Vec<Policy>,
}

impl Rules {
    /// The first matching policy's name, if any.
    fn matching(&self, a: &Attributes<'_>) -> Option<&str> {
        self.policies
            .iter()
            .find(|p| p.matches(a))
            .map(|p| p.name.as_str())
    }

    /// Whether these rules let the request through.
    fn allows(&self, a: &Attributes<'_>) -> (bool, Option<&str>) {
        let hit = self.matching(a);
        let allowed = match self.action {
            Action::Allow => hit.is_some(),
            Action::Deny => hit.is_none(),
            Action::Log => true,
        };
        (allowed, hit)
    }
}

/// One RBAC filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rbac {
    /// Enforced rules; none means the filter enforces nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_rules: Option<Rules>,
}

impl Rbac {
    /// Whether the filter lets the request or connection through.
    pub fn allows(&self, a: &Attributes<'_>) -> bool {
        if let Some(shadow) = &self.shadow_rules {
            let (allowed, policy) = shadow.allows(a);
            tracing::debug!(
                shadow_allowed = allowed,
                shadow_effective_policy_id = policy.unwrap_or(""),
                "RBAC shadow rules"
            );
        }
        let Some(rules) = &self.rules else {
            return true;
        };
        let (allowed, policy) = rules.allows(a);
        if rules.action == Action::Log && policy.is_some() {
            tracing::info!(policy = policy.unwrap_or(""), "RBAC audit: request matched");
        }
        if !allowed {
            tracing::debug!(policy = policy.unwrap_or("none"), "RBAC: access denied");
        }
        allowed
    }
}
