//! One module per `lateen` subcommand.
pub mod demo;
pub mod kube_inject;
pub mod manifest;
pub mod operator;
pub mod profile;
