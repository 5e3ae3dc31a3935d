//! Giving freed memory back to the operating system.
//!
//! Page data lives in 4 KiB heap allocations (each delta page, each
//! committed copy). When a checkpoint takes a delta in, or a canister is
//! deleted, gigabytes of them are freed at once, but the C allocator keeps
//! freed chunks below its heap's top mapped: the process stays as large as
//! its largest delta until the allocator is asked to trim.

/// Return the allocator's free memory to the operating system (glibc's
/// `malloc_trim(0)`: whole free pages inside its arenas are released with
/// `madvise`). Returns whether any memory was released. A no-op returning
/// `false` where the C library is not glibc.
///
/// It locks each arena in turn while scanning it, so call it off the
/// latency-critical threads.
pub fn return_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and trims the allocator's own
        // free lists under the allocator's locks; it has no preconditions
        // and touches no memory that is in use.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
