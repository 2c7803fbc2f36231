//! lateen-proxy as an xDS data plane (`lateen-proxy sidecar|router`): the node identity from
//! Istio's injected environment ([`identity`]), how to reach the control plane (address, TLS,
//! root certificate, token: [`control_plane`]), Envoy v3 resources translated into the
//! proxy's model ([`translate`]), the accepted resources and their assembly into one
//! configuration ([`state`]), and the agent that runs the ADS client and applies updates
//! live ([`agent`]); the CA client that gets and rotates the workload certificate
//! ([`ca_client`]); `lateen-proxy agent`, which serves that certificate to an Envoy sidecar
//! over SDS ([`sds_agent`]); where `sidecar` gets its certificate ([`workload_cert`]).

pub mod agent;
pub mod ca_client;
pub mod control_plane;
pub mod identity;
pub mod sds_agent;
pub mod state;
pub mod translate;
pub mod workload_cert;
