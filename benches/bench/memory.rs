//! `strongroom-bench memory`: resident memory of a primary and a secondary by data size.
//!
//! The issue-5 goal is under 1 KiB of RSS per stored secret beyond a fixed base. The base is
//! the RSS of a replicating pair holding no secrets; then the primary is loaded up to each size
//! (streamed to the secondary as it goes), both are given a moment to settle, and the growth
//! over the base is divided by the number of secrets. RSS includes redb's page cache, so the
//! data directory size is printed next to it for comparison.

use std::time::Duration;

use anyhow::Result;

use crate::cluster::{Env, Node};
use crate::dr;
use crate::stats::mib;

const FILL_CLIENTS: usize = 64;

pub async fn run(env: &Env, sizes: &[u64]) -> Result<()> {
    let p = dr::primary(env, "mem-primary").await?;
    let mut s = dr::spare(env, "mem-secondary").await?;
    dr::enable_secondary(env, &p, &mut s, "mem-dr").await?;
    dr::wait_caught_up(
        dr::Kind::Dr,
        &p,
        &s,
        Duration::from_millis(10),
        Duration::from_secs(60),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = (p.rss_kib()?, s.rss_kib()?);
    println!("## memory: VmRSS of a DR pair by number of stored secrets (32-byte values)");
    println!(
        "{:>15} {:>10} {:>10} {:>12} {:>12} {:>10} {:>10}",
        "secrets", "prim MiB", "sec MiB", "prim B/sec", "sec B/sec", "prim disk", "sec disk"
    );
    row("0", 0, &p, &s, base)?;
    let mut have = 0u64;
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    for &n in &sorted {
        dr::fill(&p, "mem", have, n, FILL_CLIENTS).await?;
        have = n;
        dr::wait_caught_up(
            dr::Kind::Dr,
            &p,
            &s,
            Duration::from_millis(20),
            Duration::from_secs(600),
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        row(&n.to_string(), n, &p, &s, base)?;
    }
    // Restart each node on its data: what stays resident is what holding the data needs;
    // the rest was cache. The secondary first, so it reconnects to the unchanged primary.
    s.restart().await?;
    let mut p = p;
    p.restart().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    row(&format!("{have} restart"), have, &p, &s, base)?;
    println!(
        "  B/sec = (RSS - RSS at 0 secrets) / secrets; disk in MiB under each raft directory;"
    );
    println!(
        "  \"restart\" = both nodes killed and restarted on their data (cold caches), then unsealed"
    );
    Ok(())
}

fn row(label: &str, n: u64, p: &Node, s: &Node, base: (u64, u64)) -> Result<()> {
    let (pr, sr) = (p.rss_kib()?, s.rss_kib()?);
    p.log_disk();
    s.log_disk();
    let per = |now: u64, base: u64| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", (now as f64 - base as f64) * 1024.0 / n as f64)
        }
    };
    println!(
        "{:>15} {:>10.1} {:>10.1} {:>12} {:>12} {:>10.1} {:>10.1}",
        label,
        pr as f64 / 1024.0,
        sr as f64 / 1024.0,
        per(pr, base.0),
        per(sr, base.1),
        mib(p.disk_bytes()),
        mib(s.disk_bytes())
    );
    Ok(())
}
