//! Socket-level helpers: original destination of captured connections, protocol detection
//! on the first bytes, and a stream that replays the bytes detection read.

pub mod detect;
pub mod orig_dst;
pub mod rewind;
