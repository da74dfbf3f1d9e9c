//! `strongroom-bench promotion`: how long a planned DR failover keeps clients from writing.
//!
//! Each round is the runbook of a planned failover between two clusters A (primary) and B
//! (streaming DR secondary): demote A, wait until B has A's final WAL index, promote B, then
//! retry a write on B every millisecond until one is accepted. The figures are the promote
//! call alone, promote call to first accepted write (the issue-5 goal, under 1 s), and demote
//! to first accepted write (the whole planned outage). Between rounds the demoted cluster is
//! re-pointed at the new primary with `update-primary` and the roles swap, so the update-primary
//! resync time is reported too.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::json;

use crate::cluster::{Env, Node};
use crate::dr;
use crate::stats::ms;

/// Secrets written before the first round, so promotion works on a non-trivial store.
const PRELOAD: u64 = 1000;

pub async fn run(env: &Env, rounds: usize) -> Result<()> {
    let mut a = dr::primary(env, "promo-a").await?;
    let mut b = dr::spare(env, "promo-b").await?;
    dr::enable_secondary(env, &a, &mut b, "promo-b").await?;
    dr::fill(&a, "promo", 0, PRELOAD, 32).await?;
    dr::wait_caught_up(
        dr::Kind::Dr,
        &a,
        &b,
        Duration::from_millis(10),
        Duration::from_secs(60),
    )
    .await?;

    println!("## promotion: planned failover A->B with {PRELOAD} secrets, {rounds} rounds");
    println!(
        "{:<6} {:>10} {:>10} {:>12} {:>16} {:>14} {:>16}",
        "round",
        "demote ms",
        "catchup ms",
        "promote ms",
        "promote->write",
        "demote->write",
        "update-primary"
    );
    for round in 1..=rounds {
        let r = failover(&a, &b).await?;
        // Fail back: A follows B, then the roles swap for the next round.
        let token = dr::activation_token(&b, dr::Kind::Dr, &format!("{}-r{round}", a.name)).await?;
        let t = Instant::now();
        a.call(
            Method::PUT,
            "sys/replication/dr/secondary/update-primary",
            Some(json!({
                "token": token,
                "primary_api_addr": b.addr,
                "ca_file": env.ca_file.to_string_lossy(),
            })),
        )
        .await?;
        let (_, states) = dr::wait_caught_up(
            dr::Kind::Dr,
            &b,
            &a,
            Duration::from_millis(5),
            Duration::from_secs(60),
        )
        .await?;
        let update = t.elapsed();
        println!(
            "{:<6} {:>10.1} {:>10.1} {:>12.1} {:>16.1} {:>14.1} {:>11.1} ({})",
            round,
            ms(r.demote),
            ms(r.catch_up),
            ms(r.promote_call),
            ms(r.promote_to_write),
            ms(r.total),
            ms(update),
            states
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(">")
        );
        std::mem::swap(&mut a, &mut b);
    }
    println!(
        "  all figures in ms; update-primary = call to stream-wals with equal merkle roots (states seen)"
    );
    Ok(())
}

struct Failover {
    demote: Duration,
    catch_up: Duration,
    promote_call: Duration,
    promote_to_write: Duration,
    total: Duration,
}

/// Demote `a`, wait for `b` to hold `a`'s final WAL, promote `b`, write on `b`.
async fn failover(a: &Node, b: &Node) -> Result<Failover> {
    let final_wal = a.dr_status().await?["last_wal"]
        .as_u64()
        .context("the primary reports no last_wal")?;
    let t0 = Instant::now();
    a.call(Method::PUT, "sys/replication/dr/primary/demote", None)
        .await?;
    let demote = t0.elapsed();
    loop {
        if b.dr_status().await?["last_remote_wal"].as_u64() >= Some(final_wal) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("{} never received the final WAL {final_wal}", b.name);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let caught_up = t0.elapsed();
    let t1 = Instant::now();
    b.call(
        Method::PUT,
        "sys/replication/dr/secondary/promote",
        Some(json!({})),
    )
    .await?;
    let promote_call = t1.elapsed();
    let mut i = 0u64;
    loop {
        let r = b
            .client
            .put(b.url(&format!("{}/after-promote/{i}", dr::MOUNT)))
            .header("X-Vault-Token", &b.root)
            .json(&json!({"v": "x"}))
            .send()
            .await;
        if r.map(|r| r.status().is_success()).unwrap_or(false) {
            break;
        }
        if t1.elapsed() > Duration::from_secs(30) {
            bail!("{} accepted no write within 30s of promote", b.name);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(Failover {
        demote,
        catch_up: caught_up - demote,
        promote_call,
        promote_to_write: t1.elapsed(),
        total: t0.elapsed(),
    })
}
