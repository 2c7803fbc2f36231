//! glibc malloc tuning for a proxy whose threads are few and known: the main thread (admin,
//! xDS) and `--concurrency` workers. By default glibc gives a thread its own arena when the
//! one it would use is locked (up to 8 per core); each arena keeps its own free memory, so
//! what the main thread freed after applying an xDS update cannot serve a worker's
//! connections. Capping the arenas at the number of workers lets the first worker share the
//! main thread's arena (the main thread allocates only for admin requests and configuration
//! updates, so the lock is rarely contended) while every other worker still gets one of its
//! own. Measured (BENCHMARKS.md): an xDS-configured proxy with the 100-host mesh of
//! bench/xds-proxy.sh peaks at 16.3 MB instead of 17.9 MB under HTTP/1.1 load; no change
//! with a static configuration.
//!
//! The only `unsafe` of the workspace lives here, in a crate of its own so that every other
//! crate (lateen-proxy's binary included) inherits the workspace's `unsafe_code = "forbid"`;
//! this one states its lints itself with `deny` and allows the one block below.
#![deny(unsafe_code)]

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// `M_ARENA_MAX` from glibc's `<malloc.h>` (part of its ABI since glibc 2.10).
    pub const M_ARENA_MAX: i32 = -8;

    #[allow(unsafe_code)]
    unsafe extern "C" {
        /// glibc's `int mallopt(int param, int value)`.
        pub fn mallopt(param: i32, value: i32) -> i32;
    }
}

/// Caps glibc's malloc arenas at `workers` (at least 1). Call it first thing in `main`, before
/// any other thread exists. An operator's own `MALLOC_ARENA_MAX` (or a `GLIBC_TUNABLES` arena
/// setting) wins. Elsewhere than Linux/glibc it does nothing.
pub fn limit_arenas(workers: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.contains("arena_max") {
            return;
        }
        let arenas = i32::try_from(workers.max(1)).unwrap_or(i32::MAX);
        // SAFETY: mallopt takes two integers and no pointers; it only changes a malloc
        // parameter (M_ARENA_MAX limits the arenas created from now on) under malloc's own
        // lock, and glibc allows calling it at any time. The declaration above matches
        // glibc's prototype. Its result (1 success, 0 failure) needs no handling: on failure
        // glibc keeps its default, which only costs memory.
        #[allow(unsafe_code)]
        unsafe {
            glibc::mallopt(glibc::M_ARENA_MAX, arenas);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = workers;
}
