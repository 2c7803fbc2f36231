//! The `Resource` enum: one variant per supported kind, each an `Object<Spec>`.

use crate::meta::{ConfigKey, Kind, Object, ObjectMeta};
use crate::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry, WorkloadGroup,
};
use crate::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::telemetry::Telemetry;

/// Any supported Istio configuration resource.
// Variants differ in size; resources are few and long-lived, so boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    VirtualService(Object<VirtualService>),
    DestinationRule(Object<DestinationRule>),
    Gateway(Object<Gateway>),
    ServiceEntry(Object<ServiceEntry>),
    WorkloadEntry(Object<WorkloadEntry>),
    WorkloadGroup(Object<WorkloadGroup>),
    Sidecar(Object<Sidecar>),
    PeerAuthentication(Object<PeerAuthentication>),
    AuthorizationPolicy(Object<AuthorizationPolicy>),
    RequestAuthentication(Object<RequestAuthentication>),
    Telemetry(Object<Telemetry>),
}

/// Applies the same expression to the object of whichever variant.
macro_rules! with_object {
    ($resource:expr, $obj:ident => $body:expr) => {
        match $resource {
            Resource::VirtualService($obj) => $body,
            Resource::DestinationRule($obj) => $body,
            Resource::Gateway($obj) => $body,
            Resource::ServiceEntry($obj) => $body,
            Resource::WorkloadEntry($obj) => $body,
            Resource::WorkloadGroup($obj) => $body,
            Resource::Sidecar($obj) => $body,
            Resource::PeerAuthentication($obj) => $body,
            Resource::AuthorizationPolicy($obj) => $body,
            Resource::RequestAuthentication($obj) => $body,
            Resource::Telemetry($obj) => $body,
        }
    };
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::VirtualService(_) => Kind::VirtualService,
            Resource::DestinationRule(_) => Kind::DestinationRule,
            Resource::Gateway(_) => Kind::Gateway,
            Resource::ServiceEntry(_) => Kind::ServiceEntry,
            Resource::WorkloadEntry(_) => Kind::WorkloadEntry,
            Resource::WorkloadGroup(_) => Kind::WorkloadGroup,
            Resource::Sidecar(_) => Kind::Sidecar,
            Resource::PeerAuthentication(_) => Kind::PeerAuthentication,
            Resource::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            Resource::RequestAuthentication(_) => Kind::RequestAuthentication,
            Resource::Telemetry(_) => Kind::Telemetry,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        with_object!(self, o => &o.metadata)
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        with_object!(self, o => &mut o.metadata)
    }

    /// The `apiVersion` as written (e.g. `networking.istio.io/v1alpha3`).
    pub fn api_version(&self) -> &str {
        with_object!(self, o => &o.api_version)
    }

    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// Effective namespace (`"default"` when unset).
    pub fn namespace(&self) -> &str {
        self.metadata().namespace()
    }

    /// The store key (kind, effective namespace, name).
    pub fn key(&self) -> ConfigKey {
        ConfigKey::new(self.kind(), self.namespace(), self.name())
    }

    /// The whole object as JSON (apiVersion, kind, metadata, spec), with Istio's field names.
    pub fn to_json(&self) -> serde_json::Value {
        with_object!(self, o => serde_json::to_value(o).unwrap_or(serde_json::Value::Null))
    }

    /// The spec as JSON with Istio's field names (for debug dumps and diffing).
    pub fn spec_json(&self) -> serde_json::Value {
        with_object!(self, o => serde_json::to_value(&o.spec).unwrap_or(serde_json::Value::Null))
    }

    pub fn as_virtual_service(&self) -> Option<&Object<VirtualService>> {
        match self {
            Resource::VirtualService(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_destination_rule(&self) -> Option<&Object<DestinationRule>> {
        match self {
            Resource::DestinationRule(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_gateway(&self) -> Option<&Object<Gateway>> {
        match self {
            Resource::Gateway(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_service_entry(&self) -> Option<&Object<ServiceEntry>> {
        match self {
            Resource::ServiceEntry(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_sidecar(&self) -> Option<&Object<Sidecar>> {
        match self {
            Resource::Sidecar(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_peer_authentication(&self) -> Option<&Object<PeerAuthentication>> {
        match self {
            Resource::PeerAuthentication(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_authorization_policy(&self) -> Option<&Object<AuthorizationPolicy>> {
        match self {
            Resource::AuthorizationPolicy(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_request_authentication(&self) -> Option<&Object<RequestAuthentication>> {
        match self {
            Resource::RequestAuthentication(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_telemetry(&self) -> Option<&Object<Telemetry>> {
        match self {
            Resource::Telemetry(o) => Some(o),
            _ => None,
        }
    }
}
