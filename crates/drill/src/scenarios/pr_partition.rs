//! PR partition: the link between a performance primary and its secondary is cut under load,
//! then healed. A performance secondary exists to keep a region serving when its primary is
//! far away, so while cut off it must keep answering reads from what it holds, say in its
//! status that it has no primary, and refuse writes to shared data with a 503 naming the
//! primary (a write it cannot hand on must never look accepted). After the heal it must catch
//! up and forward writes again, and the checker proves every acknowledged key reached it.
//!
//! The link is cut as the `partition` scenarios cut it, between network namespaces, when the
//! drill may build them; otherwise both clusters run on loopback and advertise a
//! [`LinkRelay`] as their cluster address, so every dial of the primary's cluster port (the
//! stream and the forwarded writes) crosses the relay the drill cuts. The verdict names the
//! link used.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde_json::Value;

use super::partition::status_disconnected;
use super::planned::CLIENTS;
use super::{Env, Rig, Verdict, ms, num, wait_for};
use crate::checker::{self, Expect, Tree};
use crate::cluster::{CLUSTER_PORT, Cluster, ClusterOptions};
use crate::ha_cluster::{LinkRelay, RELAY_PORT};
use crate::pr::{self, Probe};
use crate::workload::{Attempt, LoadSpec, Outcome, Target, Workload, make_tokens};

const A: usize = 0;
const B: usize = 1;
/// Writes per second on the primary, across the writers.
const RATE: f64 = 20.0;
/// How long the link stays cut after the refused write, so the primary logs a backlog.
const HOLD: Duration = Duration::from_secs(3);

/// The link under test.
enum Link {
    Netns,
    /// One relay in front of each cluster's cluster port, and why namespaces were not used.
    Relay(Vec<LinkRelay>, String),
}

impl Link {
    fn cut(&self, rig: &Rig) -> Result<()> {
        match self {
            Link::Netns => rig.topology()?.cut(),
            Link::Relay(relays, _) => {
                relays.iter().for_each(LinkRelay::cut);
                Ok(())
            }
        }
    }

    fn heal(&self, rig: &Rig) -> Result<()> {
        match self {
            Link::Netns => rig.topology()?.heal(),
            Link::Relay(relays, _) => {
                relays.iter().for_each(LinkRelay::heal);
                Ok(())
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Link::Netns => "link=netns".into(),
            Link::Relay(_, why) => format!("link=relay relay_reason=\"{why}\""),
        }
    }
}

/// A performance primary `a` (also the drill's usual DR primary, with nothing streaming DR)
/// and its streaming performance secondary `b`, in namespaces or behind relays.
fn pair(env: &Env) -> Result<(Rig, Link)> {
    let (mut rig, link) = match &env.netns {
        Ok(()) => (
            Rig::new(env, &ClusterOptions::default(), true)?,
            Link::Netns,
        ),
        Err(why) => {
            let options = ClusterOptions {
                cluster_addr_port: Some(RELAY_PORT),
                ..ClusterOptions::default()
            };
            let rig = Rig::new(env, &options, false)?;
            let mut relays = Vec::new();
            for c in &rig.clusters {
                let ip = &c.placement.peer_ip;
                relays.push(LinkRelay::start(
                    format!("{ip}:{RELAY_PORT}").parse()?,
                    format!("{ip}:{CLUSTER_PORT}").parse()?,
                )?);
            }
            let why = format!("no network namespaces: {why}");
            (rig, Link::Relay(relays, why))
        }
    };
    rig.start_primary(A)?;
    pr::enable_primary(&rig.clusters[A], &rig.root)?;
    pr::start_secondary(&mut rig, B, A)?;
    pr::wait_streaming(&rig.clusters[A], &rig.clusters[B], Duration::from_secs(60))?;
    Ok((rig, link))
}

/// What the secondary showed while cut off.
struct Cut {
    cut_ms: u128,
    /// When its status first said it had no primary, after the cut (`None`: never).
    disconnected_ms: Option<u128>,
    status: Value,
    /// The write sent to it once it said so.
    refused: Option<Probe>,
    reads_ok: u64,
    reads: u64,
    wal_during: u64,
}

/// Cuts the link, watches the secondary, reading `earlier` from it all along, and heals.
fn cut_and_heal(rig: &Rig, link: &Link, op: &str, earlier: &Attempt) -> Result<Cut> {
    let (a, b) = (&rig.clusters[A], &rig.clusters[B]);
    let wal_at_cut = num(&pr::perf_status(a)?["last_performance_wal"]);
    let stop = AtomicBool::new(false);
    let (reads_ok, reads) = (AtomicU64::new(0), AtomicU64::new(0));
    let t_cut = Instant::now();
    let cut = link.cut(rig);
    let (disconnected_ms, status, refused) = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let v = checker::read_value(b, op, &earlier.key);
                reads.fetch_add(1, Ordering::SeqCst);
                if v.is_ok_and(|v| v.as_deref() == Some(earlier.value.as_str())) {
                    reads_ok.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let seen = if cut.is_ok() {
            observe(b, op, &rig.tag, t_cut)
        } else {
            (None, Value::Null, None)
        };
        std::thread::sleep(HOLD);
        stop.store(true, Ordering::SeqCst);
        seen
    });
    let wal_during = pr::perf_status(a)
        .map(|s| num(&s["last_performance_wal"]).saturating_sub(wal_at_cut))
        .unwrap_or(0);
    let cut_ms = ms(t_cut, Instant::now());
    // Heal whatever happened above, then report it.
    link.heal(rig)?;
    cut?;
    Ok(Cut {
        cut_ms,
        disconnected_ms,
        status,
        refused,
        reads_ok: reads_ok.load(Ordering::SeqCst),
        reads: reads.load(Ordering::SeqCst),
        wal_during,
    })
}

/// Waits for `b`'s status to report the cut (a silent link shows when the stream's
/// heartbeats stop, after some seconds; a refused connection at once), then writes through
/// it once.
fn observe(b: &Cluster, op: &str, tag: &str, t_cut: Instant) -> Seen {
    let mut last = Value::Null;
    let seen = wait_for(
        Duration::from_secs(45),
        "the secondary to report the cut",
        || {
            let Ok(s) = pr::perf_status(b) else {
                return false;
            };
            let down = status_disconnected(&s);
            last = s;
            down
        },
    )
    .is_ok();
    if !seen {
        return (None, last, None);
    }
    let at = ms(t_cut, Instant::now());
    let refused = pr::write(b, op, "pr-while-cut", &format!("{tag}-pr-while-cut"));
    (Some(at), last, Some(refused))
}

type Seen = (Option<u128>, Value, Option<Probe>);

/// An acknowledged workload write that `b` serves, for the reads while cut.
fn earlier_key(rig: &Rig, w: &Workload, op: &str) -> Result<Attempt> {
    let first = w
        .ledger
        .snapshot()
        .into_values()
        .filter(|a| a.outcome == Outcome::Acked)
        .min_by_key(|a| a.done)
        .ok_or_else(|| anyhow!("no write was acknowledged before the cut"))?;
    let b = &rig.clusters[B];
    wait_for(
        Duration::from_secs(30),
        "an earlier write on the secondary",
        || {
            checker::read_value(b, op, &first.key)
                .is_ok_and(|v| v.as_deref() == Some(&*first.value))
        },
    )?;
    Ok(first)
}

pub fn run(env: &Env) -> Result<Verdict> {
    // Set up: a streaming pair, an operator logged in on the secondary, a writer on the
    // primary, and a write through the secondary that works before the cut.
    let (rig, link) = pair(env)?;
    let (a, b) = (&rig.clusters[A], &rig.clusters[B]);
    let tokens = make_tokens(&rig.client, &a.url(), &rig.root, CLIENTS)?;
    let op = pr::login(b)?;
    let spec = LoadSpec {
        first_client: 0,
        rate: Some(RATE),
        run_tag: rig.tag.clone(),
    };
    let mut w = Workload::start(&rig.client, Target::new(a.url()), &tokens, &spec);
    std::thread::sleep(Duration::from_secs(1));
    let mut probes = Vec::new();
    let timeout = Duration::from_secs(30);
    let value = format!("{}-pr-before", rig.tag);
    let wrote_before = pr::write_until_acked(b, &op, "pr-before", &value, timeout, &mut probes);
    let earlier = earlier_key(&rig, &w, &op)?;
    let before = pr::stream_counters(b);

    // Act: cut the link, read and write through the secondary, heal; time the catch-up of
    // what the primary logged meanwhile, and the first write through the secondary after.
    let cut = cut_and_heal(&rig, &link, &op, &earlier)?;
    let mut healed = after_heal(&rig, &op, &mut probes)?;
    w.stop();
    pr::wait_streaming(a, b, Duration::from_secs(60))?;
    let after = pr::stream_counters(b);
    healed.wrote_before = wrote_before;
    healed.counters = (after.0 - before.0, after.1 - before.1);
    healed.refused_applied = cut
        .refused
        .as_ref()
        .map_or_else(|| "none".into(), |p| applied(a, &rig.root, p));

    // Assert: see `verdict`.
    let attempts = pr::all_attempts(w.ledger.snapshot(), probes.iter().chain(&cut.refused));
    let none = HashSet::new();
    let expect = Expect {
        attempts: &attempts,
        may_lose: &none,
        must_be_gone: &none,
        tokens: &tokens,
    };
    let on_a = checker::check_in(Tree::Performance, a, &rig.root, &[b], &expect)?;
    let on_b = pr::check_secondary(b, &op, a, &attempts, &none)?;
    Ok(verdict(&rig, &link, &cut, &healed, &on_a, &on_b))
}

/// Right after the heal: times the secondary's catch-up with what the primary had logged by
/// then, and its first acknowledged write (every try kept in `probes`).
fn after_heal(rig: &Rig, op: &str, probes: &mut Vec<Probe>) -> Result<Healed> {
    let (a, b) = (&rig.clusters[A], &rig.clusters[B]);
    let t_heal = Instant::now();
    let target = num(&pr::perf_status(a)?["last_performance_wal"]);
    let caught = wait_for(
        Duration::from_secs(120),
        "the secondary to catch up after the heal",
        || {
            pr::perf_status(b)
                .is_ok_and(|s| s["state"] == "stream-wals" && num(&s["last_remote_wal"]) >= target)
        },
    );
    let catchup_ms = ms(t_heal, Instant::now());
    let value = format!("{}-pr-after", rig.tag);
    let timeout = Duration::from_secs(30);
    let wrote_after = pr::write_until_acked(b, op, "pr-after", &value, timeout, probes);
    Ok(Healed {
        caught: caught.is_ok(),
        catchup_ms,
        wrote_before: false,
        wrote_after,
        write_after_ms: ms(t_heal, Instant::now()),
        counters: (0.0, 0.0),
        refused_applied: String::new(),
    })
}

/// Whether `p`'s write is on `a` now. A 503 is in doubt by the ledger's rules, and a request
/// stuck in a dead connection's send buffer could still arrive after the heal: shown, so an
/// operator knows whether a refused write may be retried blindly.
fn applied(a: &Cluster, root: &str, p: &Probe) -> String {
    checker::read_value(a, root, &p.attempt.key).map_or_else(
        |e| format!("unknown ({e})"),
        |v| (v.as_deref() == Some(p.attempt.value.as_str())).to_string(),
    )
}

/// What the heal showed.
struct Healed {
    caught: bool,
    catchup_ms: u128,
    wrote_before: bool,
    wrote_after: bool,
    write_after_ms: u128,
    /// Stream connections resumed from the secondary's position, and merkle diffs, from
    /// before the cut until it caught up.
    counters: (f64, f64),
    /// Whether the write refused while cut is on the primary now.
    refused_applied: String,
}

/// Passes when the cut was reported and every read during it was served, the write during it
/// was refused with a 503 naming the primary, the secondary caught up and took writes again,
/// and both clusters hold every acknowledged write with equal shared trees.
fn verdict(
    rig: &Rig,
    link: &Link,
    cut: &Cut,
    healed: &Healed,
    on_a: &checker::Report,
    on_b: &checker::Report,
) -> Verdict {
    let refused = cut.refused.as_ref();
    let refused_503 = refused.is_some_and(|p| p.status == Some(503));
    let names_primary = refused.is_some_and(|p| p.body.contains("primary"));
    let error = refused
        .and_then(|p| serde_json::from_str::<Value>(&p.body).ok())
        .and_then(|v| v["errors"][0].as_str().map(str::to_string))
        .unwrap_or_default();
    let line = format!(
        "{} secondary: acked={} lost={} phantom={} roots_equal={} cut_ms={} \
         disconnected_after_ms={} cut_status=\"{}\" reads_while_cut={}/{} \
         write_while_cut={} write_while_cut_ms={} write_while_cut_names_primary={names_primary} write_while_cut_error={error:?} write_while_cut_applied={} \
         wal_during_cut={} catchup_ms={} write_after_heal_ms={} resumes={} merkle_diffs={} {}",
        on_a.figures(),
        on_b.acked,
        on_b.lost.len() + on_b.lost_allowed,
        on_b.phantom.len(),
        on_b.roots_equal,
        cut.cut_ms,
        cut.disconnected_ms
            .map_or("never".into(), |m| m.to_string()),
        pr::describe_connection(&cut.status),
        cut.reads_ok,
        cut.reads,
        refused.map_or("none".into(), |p| p
            .status
            .map_or("no-answer".into(), |s| s.to_string())),
        refused.map_or(0, |p| p.took.as_millis()),
        healed.refused_applied,
        cut.wal_during,
        healed.catchup_ms,
        healed.write_after_ms,
        healed.counters.0,
        healed.counters.1,
        link.describe(),
    );
    let served = cut.reads > 0 && cut.reads_ok == cut.reads;
    let writes = healed.wrote_before && healed.wrote_after;
    if on_a.clean()
        && on_b.clean()
        && served
        && refused_503
        && names_primary
        && healed.caught
        && writes
    {
        Verdict::Pass(line)
    } else {
        let answer = refused.map_or(String::new(), |p| {
            format!(" write_while_cut_answer={:?}", p.body)
        });
        Verdict::Fail(format!(
            "{line} wrote_before_cut={} wrote_after_heal={} caught_up={}{answer} {} secondary: {} logs: {}",
            healed.wrote_before,
            healed.wrote_after,
            healed.caught,
            on_a.examples(),
            on_b.examples(),
            rig.logs()
        ))
    }
}
