//! Whether an applied install is ready, component by component (as istioctl reports it): a
//! Deployment is ready when its controller has seen the latest spec and every wanted replica is
//! updated and ready; a CRD when the API server has established it. What is not ready comes with
//! the reason Kubernetes gives (replica counts and the Deployment's failing conditions).

use std::time::{Duration, Instant};

use kube::Client;
use serde_json::Value;

use crate::cluster;
use crate::error::Result;
use crate::inventory::ObjectRef;
use crate::render::RenderedObject;

/// How a component is named in progress output (Istio's titles, our control plane's name).
pub fn component_title(component: &str) -> &str {
    match component {
        "Base" => "Istio core",
        "Pilot" => "Lateend",
        "IngressGateways" => "Ingress gateways",
        "EgressGateways" => "Egress gateways",
        "Operator" => "Lateen operator",
        other => other,
    }
}

/// Istio reports the core first, then the control plane, then gateways.
fn component_rank(component: &str) -> u8 {
    match component {
        "Base" => 0,
        "Pilot" => 1,
        "IngressGateways" => 2,
        "EgressGateways" => 3,
        _ => 4,
    }
}

/// What is not ready in one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentReadiness {
    /// The IstioOperator component (`Base`, `Pilot`, ...).
    pub component: &'static str,
    /// `Kind/namespace/name: reason` of each object that is not ready; empty when ready.
    pub waiting: Vec<String>,
}

impl ComponentReadiness {
    pub fn is_ready(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn title(&self) -> &str {
        component_title(self.component)
    }
}

fn int_at(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// Why the live object `live` (rendered as `rendered`) is not ready, or `None` when it is.
pub fn not_ready_reason(rendered: &Value, live: &Value) -> Option<String> {
    match rendered["kind"].as_str() {
        Some("Deployment") => deployment_not_ready(live),
        Some("CustomResourceDefinition") => {
            let established = conditions(live)
                .into_iter()
                .find(|c| c["type"].as_str() == Some("Established"));
            match established {
                Some(c) if c["status"].as_str() != Some("True") => {
                    Some(format!("not established: {}", condition_text(c)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn conditions(live: &Value) -> Vec<&Value> {
    live.pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|list| list.iter().collect())
        .unwrap_or_default()
}

fn condition_text(condition: &Value) -> String {
    let field = |name: &str| condition[name].as_str().unwrap_or_default();
    let mut text = format!("{}={}", field("type"), field("status"));
    if !field("reason").is_empty() {
        text.push_str(&format!(" ({})", field("reason")));
    }
    if !field("message").is_empty() {
        text.push_str(&format!(": {}", field("message")));
    }
    text
}

fn deployment_not_ready(live: &Value) -> Option<String> {
    let wanted = int_at(live, "/spec/replicas").unwrap_or(1);
    let generation = int_at(live, "/metadata/generation");
    let observed = int_at(live, "/status/observedGeneration");
    let ready = int_at(live, "/status/readyReplicas").unwrap_or(0);
    let updated = int_at(live, "/status/updatedReplicas");
    let mut problems = Vec::new();
    if let (Some(generation), Some(observed)) = (generation, observed)
        && observed < generation
    {
        problems.push("the controller has not seen the latest spec yet".to_owned());
    }
    if let Some(updated) = updated
        && updated < wanted
    {
        problems.push(format!("{updated}/{wanted} replicas updated"));
    }
    if ready < wanted {
        problems.push(format!("{ready}/{wanted} replicas ready"));
    }
    if problems.is_empty() {
        return None;
    }
    for condition in conditions(live) {
        if condition["status"].as_str() == Some("False")
            || condition["reason"].as_str() == Some("ProgressDeadlineExceeded")
        {
            problems.push(condition_text(condition));
        }
    }
    Some(problems.join("; "))
}

/// The readiness of every component of `objects`, in the order they first appear.
pub async fn check(client: &Client, objects: &[RenderedObject]) -> Result<Vec<ComponentReadiness>> {
    let mut report: Vec<ComponentReadiness> = Vec::new();
    let mut components: Vec<&'static str> = Vec::new();
    for object in objects {
        if !components.contains(&object.component) {
            components.push(object.component);
        }
    }
    components.sort_by_key(|c| component_rank(c));
    for component in components {
        let mut waiting = Vec::new();
        for object in objects.iter().filter(|o| o.component == component) {
            if !matches!(object.kind(), "Deployment" | "CustomResourceDefinition") {
                continue;
            }
            let reference = ObjectRef::of(&object.object);
            match cluster::get(client, &reference).await? {
                None => waiting.push(format!("{reference}: does not exist")),
                Some(live) => {
                    if let Some(reason) = not_ready_reason(&object.object, &live.data) {
                        waiting.push(format!("{reference}: {reason}"));
                    }
                }
            }
        }
        report.push(ComponentReadiness { component, waiting });
    }
    Ok(report)
}

/// Checks readiness every `interval` until every component is ready or `timeout` passes,
/// calling `progress` with each report; returns the last report. A component found ready is
/// not read again (a Deployment that wobbles afterwards is for `verify-install` to see).
pub async fn wait(
    client: &Client,
    objects: &[RenderedObject],
    timeout: Duration,
    interval: Duration,
    mut progress: impl FnMut(&[ComponentReadiness]),
) -> Result<Vec<ComponentReadiness>> {
    let deadline = Instant::now() + timeout;
    let mut ready: Vec<&'static str> = Vec::new();
    loop {
        let pending: Vec<RenderedObject> = objects
            .iter()
            .filter(|o| !ready.contains(&o.component))
            .cloned()
            .collect();
        let mut report = check(client, &pending).await?;
        for component in &ready {
            report.push(ComponentReadiness {
                component,
                waiting: Vec::new(),
            });
        }
        report.sort_by_key(|c| component_rank(c.component));
        ready.extend(report.iter().filter(|c| c.is_ready()).map(|c| c.component));
        ready.dedup();
        progress(&report);
        let now = Instant::now();
        if report.iter().all(ComponentReadiness::is_ready) || now >= deadline {
            return Ok(report);
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}
