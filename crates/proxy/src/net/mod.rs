//! Socket-level helpers: original destination of captured connections, protocol detection
//! on the first bytes, a stream that replays the bytes detection read, and one that gathers
//! a task's writes into fewer system calls.

pub mod detect;
pub mod orig_dst;
pub mod rewind;
pub mod write_batch;
