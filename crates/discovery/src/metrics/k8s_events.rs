//! istiod's `pilot_k8s_reg_events{type,event}` (the service registry's Kubernetes kinds) and
//! `pilot_k8s_cfg_events{type,event}` (Istio's kinds), counted by the cluster source's watches.
//! Process-wide, as istiod's are: the watches run in tasks that hold no control plane.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::text::{Kind, Text};

/// What happened to an object, as istiod names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    Add,
    Update,
    Delete,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Add => "add",
            Event::Update => "update",
            Event::Delete => "delete",
        }
    }
}

type Counts = BTreeMap<(&'static str, Event), u64>;

static REGISTRY: Mutex<Counts> = Mutex::new(BTreeMap::new());
static CONFIG: Mutex<Counts> = Mutex::new(BTreeMap::new());

/// The registry kinds with istiod's `type` label value; anything else a watch names is an
/// Istio kind (its kind is the label), except the ConfigMaps istiod does not count.
fn registry_type(watched: &str) -> Option<&'static str> {
    Some(match watched {
        "Service" => "Services",
        "EndpointSlice" => "EndpointSlice",
        "Pod" => "Pods",
        "Node" => "Nodes",
        "Namespace" => "Namespaces",
        _ => return None,
    })
}

/// Counts one event of the watch named `watched` (`n` objects at once for a relist).
pub fn record(watched: &str, event: Event, n: u64) {
    if n == 0 || watched.starts_with("ConfigMap") {
        return;
    }
    let (counts, kind) = match registry_type(watched) {
        Some(kind) => (&REGISTRY, kind),
        None => match lateen_api::Kind::ALL.iter().find(|k| k.as_str() == watched) {
            Some(kind) => (&CONFIG, kind.as_str()),
            None => return,
        },
    };
    let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
    *counts.entry((kind, event)).or_default() += n;
}

pub(super) fn write(text: &mut Text) {
    for (name, help, counts) in [
        (
            "pilot_k8s_reg_events",
            "Events from the Kubernetes service registry.",
            &REGISTRY,
        ),
        (
            "pilot_k8s_cfg_events",
            "Events from the Kubernetes configuration store.",
            &CONFIG,
        ),
    ] {
        text.family(name, help, Kind::Counter);
        let counts = counts.lock().unwrap_or_else(|p| p.into_inner());
        for ((kind, event), value) in counts.iter() {
            text.sample(name, &[("type", kind), ("event", event.as_str())], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_istio_kinds_are_counted_under_istiods_names() {
        record("Namespace", Event::Add, 2);
        record("Namespace", Event::Delete, 1);
        record("Sidecar", Event::Update, 1);
        record("ConfigMap istio", Event::Add, 1);
        record("Secret", Event::Add, 1);
        let mut text = Text::default();
        write(&mut text);
        let text = text.finish();
        for line in [
            "# TYPE pilot_k8s_reg_events counter",
            "pilot_k8s_reg_events{type=\"Namespaces\",event=\"add\"} 2",
            "pilot_k8s_reg_events{type=\"Namespaces\",event=\"delete\"} 1",
            "pilot_k8s_cfg_events{type=\"Sidecar\",event=\"update\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(
            !text.contains("ConfigMap") && !text.contains("Secret"),
            "{text}"
        );
    }
}
