//! Istio-compatible configuration types (`networking.istio.io`, `security.istio.io`, MeshConfig):
//! parsing of multi-document YAML/JSON, dispatch on apiVersion/kind, and validation with errors
//! that name the file, the resource and the field path.
//!
//! Owns: the typed model of Istio's resources. Must not touch: I/O of any kind (files, sockets,
//! clocks); callers hand it text and a source name.
#![forbid(unsafe_code)]
