//! `strongroom-bench bootstrap`: time for a brand-new DR secondary to hold a primary's data.
//!
//! A fresh secondary has no WAL position, so it must get the whole replicated keyspace (merkle
//! diff and sync, or a stream from the start while the primary still retains it) before it
//! streams. The clock runs from the `dr/secondary/enable` call to the first status reading
//! showing `stream-wals`, `last_remote_wal == last_wal` and equal merkle roots. One primary is
//! filled incrementally (10k, then up to 100k, ...) and a new secondary bootstraps at each size,
//! so the table shows how bootstrap grows with data size. The fill itself is timed too: it is
//! the bulk-load rate with many concurrent clients.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cluster::Env;
use crate::dr;
use crate::stats::{mib, ms};

/// Concurrent clients used to load the primary.
const FILL_CLIENTS: usize = 64;

pub async fn run(env: &Env, sizes: &[u64]) -> Result<()> {
    let p = dr::primary(env, "boot-primary").await?;
    let p_base = p.rss_kib()?;
    println!(
        "## bootstrap: enable -> stream-wals with equal merkle roots, one fresh secondary per size"
    );
    println!(
        "{:>9} {:>9} {:>10} {:>10} {:>12} {:>10} {:>9} {:>9}  phases (state @ first seen)",
        "secrets",
        "fill s",
        "fill/s",
        "disk MiB",
        "bootstrap s",
        "secrets/s",
        "prim B/s",
        "sec B/s"
    );
    let mut have = 0u64;
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    for &n in &sorted {
        let fill = dr::fill(&p, "boot", have, n, FILL_CLIENTS).await?;
        let added = n - have;
        have = n;
        let mut s = dr::spare(env, &format!("boot-{n}")).await?;
        let s_base = s.rss_kib()?;
        let t = Instant::now();
        dr::enable_secondary(env, &p, &mut s, &format!("boot-{n}")).await?;
        let (_, states) = dr::wait_caught_up(
            dr::Kind::Dr,
            &p,
            &s,
            Duration::from_millis(5),
            Duration::from_secs(600),
        )
        .await?;
        let boot = t.elapsed();
        let per = |now: u64, base: u64| (now as f64 - base as f64) * 1024.0 / n as f64;
        println!(
            "{:>9} {:>9.1} {:>10.0} {:>10.1} {:>12.2} {:>10.0} {:>9.0} {:>9.0}  {}",
            n,
            fill.as_secs_f64(),
            added as f64 / fill.as_secs_f64(),
            mib(p.disk_bytes()),
            boot.as_secs_f64(),
            n as f64 / boot.as_secs_f64(),
            per(p.rss_kib()?, p_base),
            per(s.rss_kib()?, s_base),
            states
                .iter()
                .map(|(st, at)| format!("{st}@{:.0}ms", ms(*at)))
                .collect::<Vec<_>>()
                .join(" ")
        );
        drop(s);
    }
    println!(
        "  bootstrap time includes the enable call (token unwrap over TLS, wipe, keyring adoption)"
    );
    Ok(())
}
