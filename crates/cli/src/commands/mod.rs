//! One module per `lateen` subcommand.
pub mod analyze;
pub mod analyze_kube;
pub mod dashboard;
pub mod dashboard_kube;
pub mod demo;
pub mod kube_inject;
pub mod manifest;
pub mod operator;
pub mod profile;
pub mod proxy_config;
pub mod proxy_status;
