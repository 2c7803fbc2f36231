//! Envoy xDS v3 plumbing shared by the control plane and the data plane: the ADS server
//! (state-of-the-world and delta), per-proxy versions and nonces, ACK/NACK tracking, and the
//! ADS client. Keeps the generated Envoy protos (`envoy-types`) in this one leaf crate.
//!
//! Owns: the xDS protocol. Must not touch: Istio config translation or proxying.
#![forbid(unsafe_code)]
