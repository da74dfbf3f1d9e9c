//! Private network namespaces joined by veth pairs, so drills can cut and degrade the link
//! between two clusters without touching the host's network.
//!
//! Layout (names all start with `sr-drill-`, so a stale run is recognisable and removed):
//! - `sr-drill-a` and `sr-drill-b` hold one cluster each, joined by the link under test
//!   (`srd-ab` 10.77.0.1/24 <-> `srd-ba` 10.77.0.2/24);
//! - `sr-drill-ctl` holds the drill's own clients, with a control link to each cluster
//!   (10.77.1.0/24 to a, 10.77.2.0/24 to b) that faults never touch, so the drill can watch a
//!   cluster's status while it is cut off from its peer.
//!
//! Nothing is configured in the host's namespace: deleting the namespaces removes every
//! address and veth with them, which [`Topology`]'s `Drop` does.

use std::process::Command;

use anyhow::{Context, Result, bail};

pub const NS_PREFIX: &str = "sr-drill-";
pub const NS_A: &str = "sr-drill-a";
pub const NS_B: &str = "sr-drill-b";
pub const NS_CTL: &str = "sr-drill-ctl";
/// The inter-cluster link's ends.
pub const LINK_A: &str = "srd-ab";
pub const LINK_B: &str = "srd-ba";
pub const A_PEER_IP: &str = "10.77.0.1";
pub const B_PEER_IP: &str = "10.77.0.2";
pub const A_CTL_IP: &str = "10.77.1.2";
pub const B_CTL_IP: &str = "10.77.2.2";

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Names of existing namespaces that an earlier drill left behind.
fn stale_namespaces() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX))
        .map(str::to_string)
        .collect()
}

/// Kills what still runs in a drill namespace, then deletes it (its veths go with it).
fn remove_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // a pid living in a namespace only the drill creates
            crate::sys::kill(pid);
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
}

/// Removes every `sr-drill-*` namespace left by an earlier run; returns how many.
pub fn cleanup_stale() -> usize {
    let stale = stale_namespaces();
    for ns in &stale {
        remove_namespace(ns);
    }
    stale.len()
}

/// Whether this process may build namespaces; `Err` says why not.
pub fn available() -> Result<(), String> {
    if !crate::sys::is_root() {
        return Err("not running as root (network namespaces need CAP_NET_ADMIN)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("`ip` (iproute2) is not installed".into());
    }
    cleanup_stale();
    let probe = format!("{NS_PREFIX}probe");
    if let Err(e) = run(&["ip", "netns", "add", &probe]) {
        return Err(format!("`ip netns add` failed: {e}"));
    }
    remove_namespace(&probe);
    Ok(())
}

/// The namespaces and links of one drill; dropping it deletes them all.
pub struct Topology {
    created: Vec<String>,
}

impl Topology {
    /// Builds the layout in the module docs.
    pub fn build() -> Result<Topology> {
        cleanup_stale();
        let mut t = Topology {
            created: Vec::new(),
        };
        for ns in [NS_A, NS_B, NS_CTL] {
            run(&["ip", "netns", "add", ns])?;
            t.created.push(ns.to_string());
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        t.veth(NS_A, LINK_A, "10.77.0.1/24", NS_B, LINK_B, "10.77.0.2/24")?;
        t.veth(
            NS_CTL,
            "srd-ctl-a",
            "10.77.1.1/24",
            NS_A,
            "srd-a",
            "10.77.1.2/24",
        )?;
        t.veth(
            NS_CTL,
            "srd-ctl-b",
            "10.77.2.1/24",
            NS_B,
            "srd-b",
            "10.77.2.2/24",
        )?;
        Ok(t)
    }

    /// A veth pair created directly inside two of our namespaces, addressed and up.
    fn veth(
        &self,
        ns1: &str,
        dev1: &str,
        ip1: &str,
        ns2: &str,
        dev2: &str,
        ip2: &str,
    ) -> Result<()> {
        run(&[
            "ip", "-n", ns1, "link", "add", dev1, "type", "veth", "peer", "name", dev2, "netns",
            ns2,
        ])?;
        run(&["ip", "-n", ns1, "addr", "add", ip1, "dev", dev1])?;
        run(&["ip", "-n", ns2, "addr", "add", ip2, "dev", dev2])?;
        run(&["ip", "-n", ns1, "link", "set", dev1, "up"])?;
        run(&["ip", "-n", ns2, "link", "set", dev2, "up"])?;
        Ok(())
    }

    /// Cuts the inter-cluster link (both ends down).
    pub fn cut(&self) -> Result<()> {
        run(&["ip", "-n", NS_A, "link", "set", LINK_A, "down"])?;
        run(&["ip", "-n", NS_B, "link", "set", LINK_B, "down"])
    }

    /// Restores the inter-cluster link.
    pub fn heal(&self) -> Result<()> {
        run(&["ip", "-n", NS_A, "link", "set", LINK_A, "up"])?;
        run(&["ip", "-n", NS_B, "link", "set", LINK_B, "up"])
    }

    /// Applies a netem qdisc (e.g. `["delay", "100ms", "loss", "1%"]`) on both link ends.
    pub fn netem(&self, params: &[&str]) -> Result<()> {
        for (ns, dev) in [(NS_A, LINK_A), (NS_B, LINK_B)] {
            let mut args = vec![
                "ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "netem",
            ];
            args.extend_from_slice(params);
            run(&args)?;
        }
        Ok(())
    }

    /// Removes the netem qdiscs.
    pub fn clear_netem(&self) -> Result<()> {
        for (ns, dev) in [(NS_A, LINK_A), (NS_B, LINK_B)] {
            run(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root",
            ])?;
        }
        Ok(())
    }

    /// Moves the calling thread (and every thread it spawns later) into the control
    /// namespace, where the clusters' control addresses are reachable.
    pub fn enter_ctl(&self) -> Result<()> {
        let path = format!("/var/run/netns/{NS_CTL}");
        let f = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        if let Err(e) = crate::sys::enter_network_namespace(&f) {
            bail!("setns into {NS_CTL}: {e}");
        }
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            remove_namespace(&ns);
        }
    }
}
