//! HTTP proxying: serving a downstream connection (HTTP/1.1 with hyper, HTTP/2 with `h2`
//! directly, so that `Expect: 100-continue` is answered), the per-request path,
//! bodies that count and record, header rules, retries, and protocol upgrades.

pub mod access_log;
pub mod body;
pub mod coalesce;
pub mod cors;
pub mod downstream_body;
pub mod fault;
pub mod forward;
pub mod grpc_frames;
pub mod h2_server;
pub mod hash_key;
pub mod headers;
pub mod http_date;
pub mod in_flight;
pub mod mirror;
pub mod peer;
pub mod request_checks;
pub mod server;
pub mod service;
pub mod upgrade;
