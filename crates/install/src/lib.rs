//! Installing the mesh: built-in profiles, IstioOperator (`install.istio.io/v1alpha1`) overlays
//! and `--set` paths, and rendering of every Kubernetes object an install creates.
//!
//! Owns: profiles, overlay merging and manifest rendering. Must not touch: data-plane code.
#![forbid(unsafe_code)]
