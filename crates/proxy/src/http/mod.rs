//! HTTP proxying: serving a downstream connection (HTTP/1.1 or h2c), the per-request path,
//! bodies that count and record, header rules, retries, and protocol upgrades.

pub mod access_log;
pub mod body;
pub mod cors;
pub mod fault;
pub mod forward;
pub mod grpc_frames;
pub mod hash_key;
pub mod headers;
pub mod in_flight;
pub mod mirror;
pub mod peer;
pub mod request_checks;
pub mod server;
pub mod service;
pub mod upgrade;
