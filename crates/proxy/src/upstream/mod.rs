//! Upstream side of the proxy: connection pools per endpoint.

pub mod balance;
pub mod pool;
pub use pool::{Pool, Target, UpstreamError, UpstreamVersion};
