//! lateen-proxy, the data plane.
#![forbid(unsafe_code)]
