//! The benchmark mesh generator, shared by the `lateen-xds-load` binary and the in-process
//! translation benchmark (`cargo bench -p lateen-xds-load --bench translate`).
#![forbid(unsafe_code)]

pub mod generate;
