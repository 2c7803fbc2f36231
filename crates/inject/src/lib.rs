//! Sidecar injection: adds the `lateen-init` init container and the `lateen-proxy` sidecar to
//! Kubernetes workloads, following Istio's labels, annotations and decision table. One
//! implementation serves `lateen kube-inject` and the admission webhook.
//!
//! Owns: the injection transform and the admission decision. Must not touch: the cluster.
#![forbid(unsafe_code)]
