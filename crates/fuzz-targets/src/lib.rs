//! The bodies of Lateen's fuzz targets: each function takes the raw bytes a peer or user
//! controls and drives one parser or translator with them, as the running program would.
//! None of them may panic, whatever the input; a crash found by `cargo fuzz` (`fuzz/`, run by
//! `scripts/fuzz.sh`) is fixed in the crate it names and its input checked in under
//! `fuzz/corpus/TARGET/`, which `tests/corpus.rs` replays on every test run.
//!
//! Owns: the mapping from bytes to calls ([`TARGETS`] names each one for the corpus test and
//! the fuzz binaries). Must not touch: product logic; a target only calls public APIs.
#![forbid(unsafe_code)]

mod admission;
mod api;
mod capture;
mod detect;
mod peer;
mod proxy_config;
mod xds;

pub use admission::{admission_inject, admission_validate};
pub use api::api_yaml;
pub use capture::capture_flags;
pub use detect::protocol_detect;
pub use peer::peer_metadata;
pub use proxy_config::proxy_config;
pub use xds::xds_resources;

/// A target: bytes in, nothing out, never a panic.
pub type Target = fn(&[u8]);

/// Every target by the name of its `fuzz/fuzz_targets/NAME.rs` and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("api_yaml", api_yaml),
    ("proxy_config", proxy_config),
    ("xds_resources", xds_resources),
    ("admission_inject", admission_inject),
    ("admission_validate", admission_validate),
    ("protocol_detect", protocol_detect),
    ("peer_metadata", peer_metadata),
    ("capture_flags", capture_flags),
];

/// Input as text the way the programs read files: invalid UTF-8 is refused before parsing,
/// so a fuzzer's bytes are read lossily to reach the parser anyway.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
