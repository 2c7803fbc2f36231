//! Upstream side of the proxy: connection pools per endpoint, bounded per worker.

pub mod balance;
pub mod budget;
mod connector;
pub mod limits;
pub mod pool;
pub mod read_ahead;
pub mod read_buffer;
pub use pool::{Pool, Target, UpstreamError, UpstreamVersion};
#[cfg(test)]
mod pool_tests;
