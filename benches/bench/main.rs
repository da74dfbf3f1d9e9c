//! `strongroom-bench`: the numbers behind `BENCHMARKS.md`, measured against real servers.
//!
//! Every subcommand starts real `strongroom server` processes (raft storage fsync'd on disk,
//! TLS on loopback) from the binary next to this one, drives them only through the public
//! HTTPS API as an operator or client would, prints one table, and kills what it started.
//! Build and run with `cargo build --release --bins && target/release/strongroom-bench all`.
//! Two benchmarks at once on a small machine disturb each other badly: run on a quiet one.

#![forbid(unsafe_code)]

mod bootstrap;
mod cluster;
mod dr;
mod dr_ha;
mod ha;
mod kv;
mod lag;
mod memory;
mod pr;
mod promotion;
mod raft;
mod sampling;
mod stats;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: strongroom-bench <command> [options]

commands:
  kv           [--seconds N]        KV write/read throughput and p50/p99 at 1/16/64 clients
  replication  [--seconds N] [--rates 100,1000] [--clients 64] [--poll-us 1000]
                                    DR lag p50/p99 at fixed write rates and at the maximum
  promotion    [--rounds N]         planned failover: promote -> first write, demote -> write
  bootstrap    [--secrets 10000,100000]
                                    fresh secondary: enable -> stream-wals with equal roots
  memory       [--secrets 100000]   VmRSS of primary and secondary, bytes per secret
  ha           [--seconds N] [--rounds 5] [--multiplier M]
                                    3-node raft cluster: durable writes beside one node,
                                    kill -9 of the active node -> first accepted write
  ha-reads     [--seconds N]        KV read throughput: 1 node vs 3 nodes with standby reads
  dr-ha        [--seconds N] [--rates 100,1000] [--poll-us 1000] [--rounds 5]
                                    DR between two 3-node clusters: lag p50/p99 at fixed
                                    rates; primary kill -9 / step-down -> secondary streaming
  pr           [--seconds N] [--rates 100,1000] [--poll-us 1000] [--read-clients 16,64]
                                    performance replication beside DR on one primary: PR and
                                    DR lag from the same writes, reads on primary vs primary +
                                    PR secondary, forwarded vs direct write latency
  all          [--seconds N] [--secrets ...]  every benchmark above, in turn

STRONGROOM_BENCH_VERBOSE=1 prints each server's pid, address and directory (for profiling).";

/// Parsed `--name value` options.
struct Opts(Vec<String>);

impl Opts {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }

    fn int(&self, name: &str, default: u64) -> Result<u64> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .with_context(|| format!("{name} takes an integer, not {v:?}"))
            })
            .transpose()
            .map(|v| v.unwrap_or(default))
    }

    fn list(&self, name: &str, default: &[u64]) -> Result<Vec<u64>> {
        match self.get(name) {
            None => Ok(default.to_vec()),
            Some(v) => v
                .split(',')
                .map(|x| {
                    x.trim().replace('_', "").parse().with_context(|| {
                        format!("{name} takes integers separated by commas, not {v:?}")
                    })
                })
                .collect(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Without a command, keep the original behaviour (the KV benchmark).
    let (cmd, rest) = match args.first() {
        Some(c) if !c.starts_with('-') => (c.clone(), args[1..].to_vec()),
        _ => ("kv".to_string(), args.clone()),
    };
    if cmd == "help" || rest.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    if ![
        "kv",
        "replication",
        "promotion",
        "bootstrap",
        "memory",
        "ha",
        "ha-reads",
        "dr-ha",
        "pr",
        "all",
    ]
    .contains(&cmd.as_str())
    {
        bail!("unknown command {cmd:?}\n\n{USAGE}");
    }
    let opts = Opts(rest);
    let env = cluster::Env::new()?;
    machine();
    match cmd.as_str() {
        "kv" => kv::run(&env, opts.int("--seconds", 5)?).await,
        "replication" => replication(&env, &opts).await,
        "promotion" => promotion::run(&env, opts.int("--rounds", 3)? as usize).await,
        "bootstrap" => bootstrap::run(&env, &opts.list("--secrets", &[10_000, 100_000])?).await,
        "memory" => memory::run(&env, &opts.list("--secrets", &[100_000])?).await,
        "ha" => ha(&env, &opts, 5).await,
        "ha-reads" => ha::reads(&env, opts.int("--seconds", 5)?).await,
        "dr-ha" => dr_ha(&env, &opts, 5).await,
        "pr" => pr(&env, &opts, 5).await,
        "all" => {
            kv::run(&env, opts.int("--seconds", 3)?).await?;
            replication(&env, &opts).await?;
            promotion::run(&env, opts.int("--rounds", 3)? as usize).await?;
            let sizes = opts.list("--secrets", &[10_000, 100_000])?;
            bootstrap::run(&env, &sizes).await?;
            memory::run(&env, &sizes).await?;
            ha(&env, &opts, 3).await?;
            ha::reads(&env, opts.int("--seconds", 3)?).await?;
            dr_ha(&env, &opts, 3).await?;
            pr(&env, &opts, 3).await
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

async fn ha(env: &cluster::Env, opts: &Opts, seconds: u64) -> Result<()> {
    let multiplier = match opts.get("--multiplier") {
        None => None,
        Some(_) => Some(opts.int("--multiplier", 0)?),
    };
    ha::run(
        env,
        opts.int("--seconds", seconds)?,
        opts.int("--rounds", 5)? as usize,
        multiplier,
    )
    .await
}

async fn dr_ha(env: &cluster::Env, opts: &Opts, seconds: u64) -> Result<()> {
    dr_ha::run(
        env,
        opts.int("--seconds", seconds)?,
        &rates(opts)?,
        poll(opts)?,
        opts.int("--rounds", 5)? as usize,
    )
    .await
}

async fn pr(env: &cluster::Env, opts: &Opts, seconds: u64) -> Result<()> {
    let read_clients: Vec<usize> = opts
        .list("--read-clients", &[16, 64])?
        .into_iter()
        .map(|c| c as usize)
        .collect();
    pr::run(
        env,
        opts.int("--seconds", seconds)?,
        &rates(opts)?,
        poll(opts)?,
        &read_clients,
    )
    .await
}

/// The fixed write rates of the lag phases, `--rates`.
fn rates(opts: &Opts) -> Result<Vec<u32>> {
    Ok(opts
        .list("--rates", &[100, 1000])?
        .into_iter()
        .map(|r| u32::try_from(r).unwrap_or(u32::MAX))
        .collect())
}

async fn replication(env: &cluster::Env, opts: &Opts) -> Result<()> {
    let mut loads: Vec<lag::Load> = opts
        .list("--rates", &[100, 1000])?
        .into_iter()
        .map(|r| lag::Load::Rate(u32::try_from(r).unwrap_or(u32::MAX)))
        .collect();
    loads.push(lag::Load::Clients(opts.int("--clients", 64)? as usize));
    lag::run(env, opts.int("--seconds", 5)?, &loads, poll(opts)?).await
}

/// The lag sampler's interval, `--poll-us`.
fn poll(opts: &Opts) -> Result<std::time::Duration> {
    Ok(match opts.get("--poll-us") {
        None => lag::DEFAULT_POLL,
        Some(_) => std::time::Duration::from_micros(opts.int("--poll-us", 1000)?),
    })
}

/// One line describing the machine and its load, printed before every run.
fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "# machine: {cores} cores, {cpu}; load average {}",
        load.join(" ")
    );
}
