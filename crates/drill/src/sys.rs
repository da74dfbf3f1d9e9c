//! The drill's only calls into libc (signals, namespaces, parent-death), kept together so
//! they are the one place in this crate that may use `unsafe`. Each wrapper is safe to call.

#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::process::Command;

/// Makes the child started by `cmd` receive SIGKILL when the drill dies, so no server
/// outlives a drill killed by Ctrl-C or SIGKILL.
pub fn kill_child_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; callers pass pids they spawned or
    // found in a namespace only the drill creates.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// Sends SIGKILL to `pid`.
pub fn kill(pid: i32) {
    // SAFETY: as in `terminate`.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Whether the drill runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Moves the calling thread into the network namespace open as `ns`.
pub fn enter_network_namespace(ns: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: setns(2) on an open namespace fd; it affects only the calling thread.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
