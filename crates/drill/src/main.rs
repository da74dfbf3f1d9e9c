//! `strongroom-drill`: fault-injection drills for DR replication.
//!
//! Replication claims (no loss on a planned failover, loss bounded by lag on an emergency
//! one, convergence after faults) are only worth what the evidence behind them is worth. This
//! tool produces that evidence by running real clusters through real faults under load and
//! checking every acknowledged write afterwards. One verdict line per scenario, then a
//! summary; the exit code is non-zero when any scenario fails.

// libc calls live in one small module that opts in with `#![allow(unsafe_code)]`.
#![deny(unsafe_code)]

mod checker;
mod cluster;
mod dr_ha;
mod ha_cluster;
mod netns;
mod pr;
mod relay;
mod scenarios;
mod sys;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use scenarios::{Env, Netns, Scenario, Verdict};

#[derive(Parser)]
#[command(
    name = "strongroom-drill",
    about = "Fault-injection drills for Strongroom DR replication"
)]
struct Cli {
    /// The `strongroom` binary (default: next to this one).
    #[arg(long, global = true)]
    bin: Option<PathBuf>,
    /// Keep each scenario's directory (configs, data, server logs).
    #[arg(long, global = true)]
    keep: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the scenarios.
    List,
    /// Run one scenario by name, several, `ci` (the fast loopback subset) or `all`.
    Run {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("strongroom")))
        .unwrap_or_else(|| PathBuf::from("strongroom"))
}

/// Runs one scenario on its own thread (namespaces are entered per thread; a panic stays
/// contained); returns its verdict.
fn run_one(env: &Env, s: &Scenario) -> Verdict {
    if s.netns == Netns::Required
        && let Err(reason) = &env.netns
    {
        return Verdict::Skip(format!("needs network namespaces: {reason}"));
    }
    std::thread::scope(|scope| {
        let h = std::thread::Builder::new()
            .name(s.name.to_string())
            .spawn_scoped(scope, || (s.run)(env));
        match h {
            Err(e) => Verdict::Fail(format!("could not start the scenario thread: {e}")),
            Ok(h) => match h.join() {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => Verdict::Fail(format!("error=\"{e:#}\"")),
                Err(_) => Verdict::Fail("the scenario panicked".into()),
            },
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let catalogue = scenarios::catalogue();
    let names = match cli.command {
        Cmd::List => {
            for s in &catalogue {
                let tag = match s.netns {
                    Netns::Required => " [root: netns]",
                    Netns::Preferred => " [root: netns (+ netem), else a relay]",
                    Netns::Unused => "",
                };
                println!("{:<30} {}{tag}", s.name, s.about);
            }
            println!("{:<30} every scenario above", "all");
            println!(
                "{:<30} the CI subset: failovers and failbacks on loopback",
                "ci"
            );
            return ExitCode::SUCCESS;
        }
        Cmd::Run { names } => names,
    };
    let selected: Vec<&Scenario> = if names.iter().any(|n| n == "all") {
        catalogue.iter().collect()
    } else if names.iter().any(|n| n == "ci") {
        catalogue.iter().filter(|s| s.in_ci).collect()
    } else {
        let mut out = Vec::new();
        for n in &names {
            match catalogue.iter().find(|s| s.name == n) {
                Some(s) => out.push(s),
                None => {
                    eprintln!("unknown scenario {n:?}; `strongroom-drill list` shows them");
                    return ExitCode::from(2);
                }
            }
        }
        out
    };
    let bin = cli.bin.unwrap_or_else(default_bin);
    if !bin.is_file() {
        eprintln!(
            "strongroom binary not found at {}: build it (`cargo build --bin strongroom`) or pass --bin PATH",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let wants_netns = selected.iter().any(|s| s.netns != Netns::Unused);
    let env = Env {
        bin,
        keep: cli.keep,
        netns: if wants_netns {
            netns::available()
        } else {
            Err("not needed".into())
        },
    };
    if wants_netns && let Err(reason) = &env.netns {
        println!(
            "network namespaces unavailable ({reason}): skipping the partition scenarios; latency-loss and pr-partition run on loopback through a relay"
        );
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for s in selected {
        let started = std::time::Instant::now();
        let verdict = run_one(&env, s);
        let secs = started.elapsed().as_secs_f64();
        match verdict {
            Verdict::Pass(f) => {
                passed += 1;
                println!("PASS {} {f} took_s={secs:.1}", s.name);
            }
            Verdict::Fail(f) => {
                failed += 1;
                let hint = if env.keep {
                    ""
                } else {
                    " (rerun with --keep to keep the server logs)"
                };
                println!("FAIL {} {f} took_s={secs:.1}{hint}", s.name);
            }
            Verdict::Skip(why) => {
                skipped += 1;
                println!("SKIP {} reason=\"{why}\"", s.name);
            }
        }
    }
    if wants_netns {
        netns::cleanup_stale();
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
