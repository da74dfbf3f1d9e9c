//! glibc malloc tuning for a server process.
//!
//! glibc gives a process up to eight malloc arenas per core, and memory freed into one arena
//! is not reused by threads allocating from another. Under a steady write load from many
//! connections that kept a primary at 1.3 KiB of resident memory per stored secret at 100,000
//! secrets, where a restarted one on the same data needs 0.7 KiB. One arena per core keeps
//! nearly all of the parallelism (tokio runs one worker per core) and much less of the waste.
//! An operator's own `MALLOC_ARENA_MAX` wins.

/// The arena limit to set, or `None` to leave glibc's choice (the operator set one).
pub fn arena_limit(operator_setting: Option<&str>, cores: usize) -> Option<i32> {
    if operator_setting.is_some() {
        return None;
    }
    Some(i32::try_from(cores.max(1)).unwrap_or(i32::MAX))
}

/// Applies [`arena_limit`]; call before the runtime starts its threads.
pub fn tune() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let setting = std::env::var("MALLOC_ARENA_MAX").ok();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Some(limit) = arena_limit(setting.as_deref(), cores) {
        crate::os::set_malloc_arena_max(limit);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (setting, cores);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_arena_per_core_unless_the_operator_chose() {
        // Why: the operator's MALLOC_ARENA_MAX must never be overridden, and a machine that
        // reports no cores still gets a valid limit.
        assert_eq!(arena_limit(None, 2), Some(2));
        assert_eq!(arena_limit(None, 0), Some(1));
        assert_eq!(arena_limit(Some("8"), 2), None);
    }
}
