//! `strongroom-bench`: durable KV write and read throughput and latency through the HTTPS API.
//!
//! Starts a real `strongroom server` (raft storage on disk, TLS on loopback), initializes and
//! unseals it, then for 1, 16 and 64 concurrent clients runs a timed phase of writes and one of
//! reads, printing requests per second, p50 and p99 latency, and the mean number of Raft
//! entries per fsync (group commit) during each write phase. Run it on a quiet machine:
//! `cargo run --release --bin strongroom-bench [-- --seconds 5]`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Value, json};

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("--seconds takes an integer")?
        .unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let (ca_pem, cert, key) = certs()?;
    std::fs::write(dir.path().join("ca.pem"), &ca_pem)?;
    std::fs::write(dir.path().join("cert.pem"), cert)?;
    std::fs::write(dir.path().join("key.pem"), key)?;
    let config = dir.path().join("bench.hcl");
    std::fs::write(
        &config,
        format!(
            "disable_mlock = true\nstorage \"raft\" {{\n  path = \"{d}/raft\"\n  node_id = \"bench\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  cluster_address = \"127.0.0.1:0\"\n  tls_cert_file = \"{d}/cert.pem\"\n  tls_key_file = \"{d}/key.pem\"\n}}\ntelemetry {{\n  prometheus_retention_time = \"1h\"\n}}\n",
            d = dir.path().display()
        ),
    )?;
    let exe = std::env::current_exe()?
        .parent()
        .context("bench binary has no directory")?
        .join("strongroom");
    if !exe.exists() {
        bail!(
            "{} not found: build it first (cargo build --release)",
            exe.display()
        );
    }
    let mut child = Command::new(&exe)
        .arg("server")
        .arg(format!("-config={}", config.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let server = Server { child };
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .context("server exited before printing its address")??;
        if let Some(a) = line.trim().strip_prefix("Api Address: ") {
            break a.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let client = client(&ca_pem)?;
    wait_up(&client, &addr).await?;
    let init: Value = client
        .put(format!("{addr}/v1/sys/init"))
        .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
        .send()
        .await?
        .json()
        .await?;
    let key = init["keys"][0].as_str().context("no key")?.to_string();
    let root = init["root_token"].as_str().context("no token")?.to_string();
    client
        .put(format!("{addr}/v1/sys/unseal"))
        .json(&json!({"key": key}))
        .send()
        .await?;
    client
        .post(format!("{addr}/v1/sys/mounts/kv"))
        .header("X-Vault-Token", &root)
        .json(&json!({"type": "kv"}))
        .send()
        .await?
        .error_for_status()?;

    println!("strongroom-bench: raft storage on disk, HTTPS on loopback, {seconds}s per phase");
    println!(
        "{:<6} {:>7} {:>12} {:>10} {:>10} {:>16}",
        "op", "clients", "ops/s", "p50 ms", "p99 ms", "entries/fsync"
    );
    for clients in [1usize, 16, 64] {
        let before = fsync_stats(&client, &addr, &root).await?;
        let w = phase(&client, &addr, &root, clients, seconds, true).await?;
        let after = fsync_stats(&client, &addr, &root).await?;
        let batches = after.1 - before.1;
        let per_fsync = if batches > 0.0 {
            (after.0 - before.0) / batches
        } else {
            0.0
        };
        println!(
            "{:<6} {:>7} {:>12.0} {:>10.2} {:>10.2} {:>16.2}",
            "write", clients, w.0, w.1, w.2, per_fsync
        );
        let r = phase(&client, &addr, &root, clients, seconds, false).await?;
        println!(
            "{:<6} {:>7} {:>12.0} {:>10.2} {:>10.2} {:>16}",
            "read", clients, r.0, r.1, r.2, "-"
        );
    }
    drop(server);
    Ok(())
}

/// One timed phase: returns (ops/s, p50 ms, p99 ms).
async fn phase(
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    clients: usize,
    seconds: u64,
    write: bool,
) -> Result<(f64, f64, f64)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, addr, token) = (client.clone(), addr.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let key = format!("kv/bench-{c}-{}", i % 1000);
                let t = Instant::now();
                let r = if write {
                    client
                        .put(format!("{addr}/v1/{key}"))
                        .header("X-Vault-Token", &token)
                        .json(&json!({"v": i.to_string()}))
                        .send()
                        .await
                } else {
                    client
                        .get(format!("{addr}/v1/{key}"))
                        .header("X-Vault-Token", &token)
                        .send()
                        .await
                };
                let ok = r
                    .map(|r| r.status().is_success() || (!write && r.status() == 404))
                    .unwrap_or(false);
                if !ok {
                    return Err(anyhow::anyhow!("request failed during the benchmark"));
                }
                lat.push(t.elapsed());
                i += 1;
            }
            Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Ok((all.len() as f64 / elapsed, pct(0.50), pct(0.99)))
}

/// (sum, count) of the fsync batch-size histogram.
async fn fsync_stats(client: &reqwest::Client, addr: &str, token: &str) -> Result<(f64, f64)> {
    let text = client
        .get(format!("{addr}/v1/sys/metrics?format=prometheus"))
        .header("X-Vault-Token", token)
        .send()
        .await?
        .text()
        .await?;
    let get = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    Ok((
        get("vault_raft_storage_fsync_batch_size_sum"),
        get("vault_raft_storage_fsync_batch_size_count"),
    ))
}

async fn wait_up(client: &reqwest::Client, addr: &str) -> Result<()> {
    for _ in 0..200 {
        if client
            .get(format!("{addr}/v1/sys/seal-status"))
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("server did not come up")
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
        .pool_max_idle_per_host(128)
        .build()?)
}

fn certs() -> Result<(String, String, String)> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&key, &ca)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}
