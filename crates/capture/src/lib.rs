//! Traffic capture, as Istio's istio-iptables does it: turns capture settings into NAT rules in
//! Istio's chains (`ISTIO_INBOUND`, `ISTIO_IN_REDIRECT`, `ISTIO_OUTPUT`, `ISTIO_REDIRECT`),
//! applies them with `iptables-restore`/`ip6tables-restore`, and removes exactly what it added.
//!
//! Owns: rule generation and applying/cleaning rules. Must not touch: proxying or config.
//!
//! Map: [`config`] typed settings and defaults; [`rules`] the rule set and its restore text;
//! [`runner`] running external tools; [`apply`] apply, rollback and clean-up; [`cli`] the flags
//! and the entry points [`run`] / [`run_cleanup`] used by `lateen-proxy capture[-cleanup]`.
#![forbid(unsafe_code)]

pub mod apply;
pub mod cli;
pub mod config;
pub mod error;
pub mod rules;
pub mod runner;

pub use cli::{CaptureArgs, CleanupArgs, run, run_cleanup};
pub use config::CaptureConfig;
pub use error::CaptureError;
pub use rules::{Family, RuleSet, Table};
pub use runner::CommandRunner;
