//! The server's only calls into libc, kept together so they are the one place in this crate
//! that may use `unsafe`. Each wrapper is safe to call and returns what the call reported.

#![allow(unsafe_code)]

/// Caps glibc's malloc arenas at `limit`; call before the runtime starts its threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn set_malloc_arena_max(limit: i32) {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other
    // thread of this process exists, and a refused setting (return 0) changes nothing.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, limit);
    }
}

/// Locks all current and future pages of the process in memory (no swap).
pub fn lock_all_memory() -> std::io::Result<()> {
    // SAFETY: mlockall has no memory-safety preconditions; it only changes paging policy.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
