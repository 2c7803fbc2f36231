//! Traffic capture, as Istio's istio-iptables does it: turns capture settings into NAT rules in
//! Istio's chains (`ISTIO_INBOUND`, `ISTIO_IN_REDIRECT`, `ISTIO_OUTPUT`, `ISTIO_REDIRECT`),
//! applies them with `iptables-restore`/`ip6tables-restore`, and removes exactly what it added.
//!
//! Owns: rule generation and applying/cleaning rules. Must not touch: proxying or config.
#![forbid(unsafe_code)]
