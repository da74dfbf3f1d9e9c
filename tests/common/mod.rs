//! Shared harness for end-to-end tests: real `strongroom` processes over real TLS.
//!
//! Each test gets its own temporary directory with a CA and a server certificate whose SANs
//! match the loopback address, a config file, and a raft data directory. Servers bind port 0
//! and report their bound address on stdout, so tests never race for ports. A started node's
//! stdout and stderr are kept in `stdout.log` and `stderr.log` in its directory, so a test can
//! read what the server logged.

#![allow(dead_code)]

pub mod cluster;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_strongroom");

/// Sends `sig` to a child this harness spawned and has not reaped yet.
#[allow(unsafe_code)]
pub fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child.
    unsafe { libc::kill(pid, sig) };
}

/// A CA and a server certificate for 127.0.0.1 / localhost, written to `dir`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path) -> Certs {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "strongroom test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let certs = Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    std::fs::write(&certs.ca, ca.pem()).unwrap();
    std::fs::write(&certs.cert, cert.pem()).unwrap();
    std::fs::write(&certs.key, key.serialize_pem()).unwrap();
    certs
}

/// A test node: its directory, certificates and config, and (while running) its process.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub certs: Certs,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub addr: String,
    /// The threads copying the running process's output into the log files.
    drains: Vec<JoinHandle<()>>,
}

impl Node {
    /// A raft-backed TLS node, not started.
    pub fn new() -> Node {
        Node::with_config("", "")
    }

    /// A node whose config.hcl also holds top-level `extra` HCL.
    pub fn with_extra_config(extra: &str) -> Node {
        Node::with_config("", extra)
    }

    /// A node whose config.hcl also holds `extra` (top-level HCL, e.g. a `replication { }`
    /// stanza) and `listener_extra` (inside the TLS listener stanza, e.g. its `telemetry { }`).
    pub fn with_config(listener_extra: &str, extra: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let certs = make_certs(dir.path());
        let config = dir.path().join("config.hcl");
        let raft = dir.path().join("raft");
        std::fs::write(
            &config,
            format!(
                r#"
disable_mlock = true
storage "raft" {{
  path    = "{}"
  node_id = "node1"
}}
listener "tcp" {{
  address         = "127.0.0.1:0"
  cluster_address = "127.0.0.1:0"
  tls_cert_file   = "{}"
  tls_key_file    = "{}"
{listener_extra}
}}
telemetry {{
  prometheus_retention_time = "1h"
  disable_hostname = true
}}
{extra}
"#,
                raft.display(),
                certs.cert.display(),
                certs.key.display()
            ),
        )
        .unwrap();
        Node {
            dir,
            certs,
            config,
            child: None,
            addr: String::new(),
            drains: Vec::new(),
        }
    }

    pub fn raft_dir(&self) -> PathBuf {
        self.dir.path().join("raft")
    }

    /// Everything the server wrote to stdout (appended across restarts).
    pub fn stdout_log(&self) -> PathBuf {
        self.dir.path().join("stdout.log")
    }

    /// Everything the server wrote to stderr, where its log lines go (appended across restarts).
    pub fn stderr_log(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    /// Starts the server and waits until it answers `sys/seal-status`.
    pub fn start(&mut self) {
        let mut child = Command::new(BIN)
            .arg("server")
            .arg(format!("-config={}", self.config.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = (self.stdout_log(), self.stderr_log());
        let (addr, drains) = read_api_addr_logging(&mut child, Some(logs));
        self.addr = addr;
        self.drains = drains;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = self.client();
        loop {
            if let Ok(r) = client
                .get(format!("{}/v1/sys/seal-status", self.addr))
                .send()
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.join_drains();
    }

    /// Waits until the log files hold all the output of the exited process.
    fn join_drains(&mut self) {
        for d in self.drains.drain(..) {
            let _ = d.join();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        signal(&c, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                self.join_drains();
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                self.join_drains();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A blocking HTTPS client trusting this node's CA.
    pub fn client(&self) -> reqwest::blocking::Client {
        client_for(&self.certs.ca)
    }

    /// Runs the CLI against this node; returns (exit code, stdout, stderr).
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
        self.cli_stdin(token, args, "")
    }

    pub fn cli_stdin(
        &self,
        token: Option<&str>,
        args: &[&str],
        stdin: &str,
    ) -> (i32, String, String) {
        use std::io::Write;
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_CACERT", &self.certs.ca)
            .env("HOME", self.dir.path())
            .env_remove("VAULT_TOKEN")
            .env_remove("VAULT_FORMAT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = token {
            cmd.env("VAULT_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `PUT sys/init` then unseal with the threshold; returns (keys, root token).
    pub fn init_and_unseal(&self, shares: u32, threshold: u32) -> (Vec<String>, String) {
        let c = self.client();
        let r: Value = c
            .put(format!("{}/v1/sys/init", self.addr))
            .json(&serde_json::json!({"secret_shares": shares, "secret_threshold": threshold}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let keys: Vec<String> = r["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let root = r["root_token"].as_str().unwrap().to_string();
        self.unseal(&keys[..threshold as usize]);
        (keys, root)
    }

    pub fn unseal(&self, keys: &[String]) -> Value {
        let c = self.client();
        let mut last = Value::Null;
        for k in keys {
            last = c
                .put(format!("{}/v1/sys/unseal", self.addr))
                .json(&serde_json::json!({"key": k}))
                .send()
                .unwrap()
                .json()
                .unwrap();
        }
        last
    }

    /// An authenticated request builder.
    pub fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::blocking::RequestBuilder {
        self.client()
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", token)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Reads the server's stdout until the banner names the API address; keeps draining both
/// pipes afterwards so the server never blocks on a full pipe.
pub fn read_api_addr(child: &mut Child) -> String {
    read_api_addr_logging(child, None).0
}

/// As [`read_api_addr`], and when `logs` names (stdout file, stderr file) appends every line
/// of each pipe to its file. Returns the draining threads, which end when the process exits.
pub fn read_api_addr_logging(
    child: &mut Child,
    logs: Option<(PathBuf, PathBuf)>,
) -> (String, Vec<JoinHandle<()>>) {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (mut out_log, err_log) = match logs {
        Some((out, err)) => (Some(append(&out)), Some(append(&err))),
        None => (None, None),
    };
    let stderr_drain = std::thread::spawn(move || copy_lines(BufReader::new(stderr), err_log));
    let mut stdout = BufReader::new(stdout);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    let mut line = Vec::new();
    while Instant::now() < deadline {
        line.clear();
        match stdout.read_until(b'\n', &mut line) {
            Ok(n) if n > 0 => {
                if let Some(f) = out_log.as_mut() {
                    f.write_all(&line).unwrap();
                }
                let text = String::from_utf8_lossy(&line);
                seen.push_str(&text);
                if let Some(addr) = text.trim().strip_prefix("Api Address: ") {
                    let addr = addr.to_string();
                    let stdout_drain = std::thread::spawn(move || copy_lines(stdout, out_log));
                    return (addr, vec![stdout_drain, stderr_drain]);
                }
            }
            _ => break,
        }
    }
    panic!("server did not print its API address; stdout was:\n{seen}");
}

fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Copies the pipe to `log` line by line, bytes as they are (or drops them), until it closes.
fn copy_lines(mut pipe: impl BufRead, mut log: Option<std::fs::File>) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match pipe.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&line);
                }
            }
        }
    }
}

pub fn client_for(ca: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Whether `needle` occurs anywhere in the files below `dir`.
pub fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if dir_contains(&p, needle) {
                return true;
            }
        } else if let Ok(bytes) = std::fs::read(&p)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            return true;
        }
    }
    false
}

/// The JSON body of a successful answer (`null` for 204); panics with the body otherwise.
pub fn ok(r: reqwest::blocking::Response) -> Value {
    let status = r.status();
    let body = r.text().unwrap();
    assert!(status.is_success(), "unexpected {status}: {body}");
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap()
    }
}

/// `data` of `sys/replication/dr/status` (unauthenticated).
pub fn dr_status(node: &Node) -> Value {
    ok(node
        .client()
        .get(format!("{}/v1/sys/replication/dr/status", node.addr))
        .send()
        .unwrap())["data"]
        .clone()
}

/// Waits until `cond` holds, polling; panics with `what` after `secs`.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the secondary has applied everything the primary logged and the trees agree.
pub fn wait_caught_up(primary: &Node, secondary: &Node, secs: u64) {
    wait_for(secs, "the secondary to catch up", || {
        let p = dr_status(primary);
        let s = dr_status(secondary);
        s["state"] == "stream-wals"
            && s["last_remote_wal"] == p["last_wal"]
            && s["merkle_root"] == p["merkle_root"]
    });
}
