//! Real `strongroom` server processes for the benchmarks.
//!
//! Every figure in `BENCHMARKS.md` must come from the same binary an operator runs, over the
//! same TLS listener, with raft storage fsync'd to disk; so the benchmarks never link the server
//! in-process. This module owns that plumbing: one CA for all nodes of a run (so a secondary can
//! be handed the primary's `ca_file`), one directory per node, the server's log in that
//! directory for post-mortems, and the process's resident memory from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Value, json};

/// Where a benchmark run keeps its nodes, and the CA they all share.
pub struct Env {
    dir: tempfile::TempDir,
    exe: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_pem: String,
    pub ca_file: PathBuf,
    /// An HTTP/1.1 client trusting the run's CA: each concurrent benchmark client gets its own
    /// connection from the pool, as separate Vault clients would.
    pub client: reqwest::Client,
    next: std::sync::atomic::AtomicUsize,
}

impl Env {
    /// A fresh run directory and CA; finds `strongroom` next to the bench binary.
    pub fn new() -> Result<Env> {
        let exe = std::env::current_exe()?
            .parent()
            .context("the bench binary has no directory")?
            .join("strongroom");
        if !exe.exists() {
            bail!(
                "{} not found: build it first with `cargo build --release --bins`",
                exe.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("strongroom-bench-")
            .tempdir()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "strongroom bench CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem())?;
        let ca_pem = ca.pem();
        let client = client(&ca_pem)?;
        Ok(Env {
            dir,
            exe,
            ca,
            ca_pem,
            ca_file,
            client,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// A client with its own connection pool (so a sampler never queues behind the load).
    pub fn fresh_client(&self) -> Result<reqwest::Client> {
        client(&self.ca_pem)
    }

    /// Starts a new raft-backed TLS node and waits until it answers.
    pub async fn start(&self, name: &str) -> Result<Node> {
        self.start_with_config(name, |d| {
            format!(
                "disable_mlock = true\nstorage \"raft\" {{\n  path = \"{d}/raft\"\n  node_id = \"{name}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  cluster_address = \"127.0.0.1:0\"\n  tls_cert_file = \"{d}/cert.pem\"\n  tls_key_file = \"{d}/key.pem\"\n  telemetry {{\n    unauthenticated_metrics_access = true\n  }}\n}}\ntelemetry {{\n  prometheus_retention_time = \"1h\"\n  disable_hostname = true\n}}\n",
                d = d.display()
            )
        })
        .await
    }
}

impl Env {
    /// Starts a node whose `server.hcl` is `config(dir)` (for fixed ports, `retry_join` and
    /// the like): `dir` holds `cert.pem`/`key.pem` signed by the run's CA; waits until it answers.
    pub async fn start_with_config(
        &self,
        name: &str,
        config: impl FnOnce(&Path) -> String,
    ) -> Result<Node> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.dir.path().join(format!("{n:02}-{name}"));
        std::fs::create_dir_all(&dir)?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?
            .signed_by(&key, &self.ca)?;
        std::fs::write(dir.join("cert.pem"), cert.pem())?;
        std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
        let path = dir.join("server.hcl");
        std::fs::write(&path, config(&dir))?;
        let (child, addr) = spawn(&self.exe, &path, &dir, name)?;
        let node = Node {
            name: name.to_string(),
            dir,
            config: path,
            exe: self.exe.clone(),
            addr,
            child,
            client: self.client.clone(),
            root: String::new(),
            unseal_key: String::new(),
        };
        node.wait_up().await?;
        Ok(node)
    }
}

/// Spawns `strongroom server` and reads the API address it prints.
fn spawn(exe: &Path, config: &Path, dir: &Path, name: &str) -> Result<(Child, String)> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    let mut child = Command::new(exe)
        .arg("server")
        .arg(format!("-config={}", config.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("the server has no stdout");
    };
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{name} exited before printing its address (see {})",
                    dir.join("server.log").display()
                );
            }
        };
        if let Some(a) = line.trim().strip_prefix("Api Address: ") {
            break a.to_string();
        }
    };
    if std::env::var_os("STRONGROOM_BENCH_VERBOSE").is_some() {
        eprintln!(
            "started {name}: pid {} at {addr} (dir {})",
            child.id(),
            dir.display()
        );
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((child, addr))
}

/// One running server process; killed when dropped.
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    config: PathBuf,
    exe: PathBuf,
    pub addr: String,
    child: Child,
    pub client: reqwest::Client,
    /// The root token that works here (a secondary adopts its primary's).
    pub root: String,
    /// The single unseal key share (a secondary adopts its primary's seal).
    pub unseal_key: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    async fn wait_up(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.client.get(self.url("sys/seal-status")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer sys/seal-status within 30s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL (`kill -9`) without restarting; [`Node::restart`] brings it back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL and start again on the same data (new ports unless the config fixes them),
    /// then unseal.
    pub async fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, addr) = spawn(&self.exe, &self.config, &self.dir, &self.name)?;
        self.child = child;
        self.addr = addr;
        self.wait_up().await?;
        let key = self.unseal_key.clone();
        self.call(
            reqwest::Method::PUT,
            "sys/unseal",
            Some(json!({ "key": key })),
        )
        .await?;
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.addr)
    }

    /// Calls the API with the root token; any non-2xx answer is an error carrying the body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self.client.request(method.clone(), self.url(path));
        if !self.root.is_empty() {
            req = req.header("X-Vault-Token", &self.root);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("{method} {path} on {}", self.name))?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{method} {path} on {} answered {status}: {text}", self.name);
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{path} answered non-JSON"))
    }

    /// `sys/init` with one share, `sys/unseal`; remembers the root token.
    pub async fn init_unseal(&mut self) -> Result<()> {
        let init = self
            .call(
                reqwest::Method::PUT,
                "sys/init",
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await?;
        let key = init["keys"][0].as_str().context("sys/init gave no key")?;
        self.call(
            reqwest::Method::PUT,
            "sys/unseal",
            Some(json!({ "key": key })),
        )
        .await?;
        self.unseal_key = key.to_string();
        self.root = init["root_token"]
            .as_str()
            .context("sys/init gave no root token")?
            .to_string();
        Ok(())
    }

    /// The `data` of `sys/replication/dr/status` (unauthenticated).
    pub async fn dr_status(&self) -> Result<Value> {
        self.repl_status(crate::dr::Kind::Dr).await
    }

    /// The `data` of `sys/replication/<kind>/status` (unauthenticated).
    pub async fn repl_status(&self, kind: crate::dr::Kind) -> Result<Value> {
        let v: Value = self
            .client
            .get(self.url(&kind.status_path()))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v["data"].clone())
    }

    /// `sys/metrics` in Prometheus text, read without a token (so it works on a DR secondary).
    async fn metrics_text(&self) -> Result<String> {
        Ok(self
            .client
            .get(self.url("sys/metrics?format=prometheus"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// The sum of every series of metric `name` (a counter or gauge) in `sys/metrics`; zero
    /// when the metric has no series yet.
    pub async fn metric(&self, name: &str) -> Result<f64> {
        Ok(series_sum(&self.metrics_text().await?, name))
    }

    /// (sum, count) of a Prometheus histogram in `sys/metrics`.
    pub async fn histogram(&self, name: &str) -> Result<(f64, f64)> {
        let text = self.metrics_text().await?;
        let get = |suffix: &str| series_sum(&text, &format!("{name}{suffix}"));
        Ok((get("_sum"), get("_count")))
    }

    /// The cumulative `_bucket` series of a Prometheus histogram in `sys/metrics`.
    pub async fn buckets(&self, name: &str) -> Result<crate::stats::Buckets> {
        let text = self.metrics_text().await?;
        let prefix = format!("{name}_bucket{{le=\"");
        let mut out: crate::stats::Buckets = text
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(prefix.as_str())?;
                let (le, rest) = rest.split_once('"')?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, rest.rsplit(' ').next()?.parse().ok()?))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(out)
    }

    /// Resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")
    }

    /// CPU time the process has used so far (user + system, all threads), in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        proc_cpu_seconds(&self.child.id().to_string())
    }

    /// Logs the node's large data files to stderr when `STRONGROOM_BENCH_VERBOSE` is set.
    pub fn log_disk(&self) {
        if std::env::var_os("STRONGROOM_BENCH_VERBOSE").is_none() {
            return;
        }
        for (name, len) in big_files(&self.dir.join("raft")) {
            eprintln!("  {}: {name} {:.1} MiB", self.name, len as f64 / 1048576.0);
        }
    }

    /// Bytes on disk under the node's raft directory.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir.join("raft"))
    }
}

/// User + system CPU seconds of process `pid` (`self` for this one), all threads.
pub fn proc_cpu_seconds(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat_cpu_seconds(&stat).context("/proc/<pid>/stat has no utime/stime")
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in seconds: clock ticks of
/// 1/100 s, Linux's `USER_HZ`.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2, in parentheses) may hold spaces and parentheses; the fields
    // after its last `)` are plain, starting with field 3 (state).
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds the whole machine has spent busy (every state but idle and iowait) and in all,
/// summed over its cores, from the first line of `/proc/stat` (in `USER_HZ` ticks).
pub fn machine_cpu_seconds() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    machine_busy_total(&stat).context("/proc/stat has no aggregate cpu line")
}

fn machine_busy_total(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if ticks.len() < 5 {
        return None;
    }
    let total: f64 = ticks.iter().sum();
    Some(((total - ticks[3] - ticks[4]) / 100.0, total / 100.0))
}

/// The sum of every series of metric `name` (not a longer name sharing its prefix) in
/// Prometheus text.
fn series_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Files of at least 1 MiB under `p`, largest first, as "name size-MiB" (for verbose runs).
pub fn big_files(p: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.len() >= 1 << 20 => out.push((
                    e.path()
                        .strip_prefix(p)
                        .map(|r| r.display().to_string())
                        .unwrap_or_default(),
                    m.len(),
                )),
                _ => {}
            }
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn client(ca_pem: &str) -> Result<reqwest::Client> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .http1_only()
        .pool_max_idle_per_host(256)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Why: the `pr` read table reports how the cores were split from these fields; an
    // off-by-one field would print another counter as CPU time.
    #[test]
    fn cpu_seconds_from_a_stat_line_with_an_awkward_command_name() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0";

        assert_eq!(stat_cpu_seconds(stat), Some(3.25));
        assert_eq!(stat_cpu_seconds("4242 (x) S 1 2"), None);
    }

    // Why: the same table's "other" column is the machine's busy time minus ours.
    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 40 800 50 3 2 0 0 0\ncpu0 50 2 20 400 25 1 1 0 0 0\n";

        assert_eq!(machine_busy_total(stat), Some((1.5, 10.0)));
    }
}
