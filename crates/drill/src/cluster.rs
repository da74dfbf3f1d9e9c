//! One Strongroom cluster as a real OS process, and the drill's private PKI.
//!
//! Drills must exercise the same code paths an operator runs, so every cluster is the real
//! `strongroom` binary over real TLS, restarted from its real data directory. The process is
//! owned by a [`Cluster`] value whose `Drop` kills it, so a failing or panicking scenario never
//! leaves a server behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

/// The API and cluster ports every cluster uses on its own address.
pub const API_PORT: u16 = 8200;
pub const CLUSTER_PORT: u16 = 8201;

/// A CA for one drill run; it signs every cluster's server certificate, so one trust root
/// serves the drill's clients and each secondary's `ca_file`.
pub struct Pki {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub ca_file: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Result<Pki> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "strongroom drill CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca_file = dir.join("drill-ca.pem");
        std::fs::write(&ca_file, issuer.pem())
            .with_context(|| format!("writing {}", ca_file.display()))?;
        Ok(Pki { issuer, ca_file })
    }

    /// Writes a server certificate and key for `sans` into `dir`; returns (cert, key) paths.
    pub(crate) fn server_cert(&self, dir: &Path, sans: &[String]) -> Result<(PathBuf, PathBuf)> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(sans.to_vec())?.signed_by(&key, &self.issuer)?;
        let cert_file = dir.join("server.pem");
        let key_file = dir.join("server-key.pem");
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;
        Ok((cert_file, key_file))
    }

    /// A blocking HTTPS client trusting only this CA.
    pub fn client(&self) -> Result<Client> {
        Ok(Client::builder()
            .tls_backend_preconfigured(self.tls_config()?)
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()?)
    }

    /// TLS that trusts only this CA (for the drill's clients).
    pub fn tls_config(&self) -> Result<rustls::ClientConfig> {
        let pem = std::fs::read(&self.ca_file)?;
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.context("parsing the drill CA")?)?;
        }
        Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
    }
}

/// Where a cluster lives on the network.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The network namespace the server runs in (`None`: the drill's own, on loopback).
    pub netns: Option<String>,
    /// The address the drill's clients use to reach the API.
    pub client_ip: String,
    /// The address other clusters use (API and cluster port): the inter-cluster link.
    pub peer_ip: String,
    /// The address the API listener binds.
    pub bind_api_ip: String,
}

impl Placement {
    pub fn loopback(ip: String) -> Placement {
        Placement {
            netns: None,
            client_ip: ip.clone(),
            peer_ip: ip.clone(),
            bind_api_ip: ip,
        }
    }
}

/// Settings that vary per scenario.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// `replication { wal_retention_entries = N }` when set.
    pub wal_retention_entries: Option<u64>,
    /// The port advertised in `cluster_addr` when set (the listener still binds
    /// [`CLUSTER_PORT`]): a relay listening there then carries every dial of the cluster port.
    pub cluster_addr_port: Option<u16>,
}

/// A cluster: its directory, config, process and the secrets needed to unseal it.
pub struct Cluster {
    pub name: String,
    pub placement: Placement,
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    client: Client,
    /// Unseal keys in force (after a secondary enable, the primary's).
    pub keys: Vec<String>,
    /// Extra environment for the server process (fault knobs), applied at every start.
    pub env: Vec<(String, String)>,
}

impl Cluster {
    /// Prepares (does not start) a cluster in `dir/name`.
    pub fn new(
        pki: &Pki,
        base: &Path,
        name: &str,
        placement: Placement,
        options: &ClusterOptions,
        bin: &Path,
        client: Client,
    ) -> Result<Cluster> {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("raft"))?;
        let mut sans = vec![placement.client_ip.clone(), placement.peer_ip.clone()];
        sans.dedup();
        let (cert, key) = pki.server_cert(&dir, &sans)?;
        let replication = options
            .wal_retention_entries
            .map(|n| format!("replication {{\n  wal_retention_entries = {n}\n}}\n"))
            .unwrap_or_default();
        let config = dir.join("config.hcl");
        let peer = &placement.peer_ip;
        let advertised = options.cluster_addr_port.unwrap_or(CLUSTER_PORT);
        // Metrics are open on every drill listener: a DR secondary serves `sys/metrics` only
        // unauthenticated (it has no tokens of its own), and drills read its lag gauge.
        std::fs::write(
            &config,
            format!(
                r#"disable_mlock = true
api_addr     = "https://{peer}:{API_PORT}"
cluster_addr = "https://{peer}:{advertised}"
storage "raft" {{
  path    = "{raft}"
  node_id = "{name}"
}}
listener "tcp" {{
  address         = "{bind}:{API_PORT}"
  cluster_address = "{peer}:{CLUSTER_PORT}"
  tls_cert_file   = "{cert}"
  tls_key_file    = "{key}"
  telemetry {{
    unauthenticated_metrics_access = true
  }}
}}
telemetry {{
  prometheus_retention_time = "1h"
  disable_hostname          = true
}}
{replication}"#,
                raft = dir.join("raft").display(),
                bind = placement.bind_api_ip,
                cert = cert.display(),
                key = key.display(),
            ),
        )?;
        Ok(Cluster {
            name: name.to_string(),
            log: dir.join("server.log"),
            placement,
            dir,
            config,
            bin: bin.to_path_buf(),
            child: None,
            client,
            keys: Vec::new(),
            env: Vec::new(),
        })
    }

    /// A node whose config the caller writes (multi-node Raft drills, `ha_cluster`): the
    /// config text goes to `dir/config.hcl`, the log to `dir/server.log`.
    pub fn prepared(
        name: &str,
        placement: Placement,
        dir: &Path,
        config_text: &str,
        bin: &Path,
        client: Client,
    ) -> Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("config.hcl");
        std::fs::write(&config, config_text)?;
        Ok(Cluster {
            name: name.to_string(),
            log: dir.join("server.log"),
            placement,
            dir: dir.to_path_buf(),
            config,
            bin: bin.to_path_buf(),
            child: None,
            client,
            keys: Vec::new(),
            env: Vec::new(),
        })
    }

    /// The server's pid while it runs (loopback placements: the server itself).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The URL the drill uses.
    pub fn url(&self) -> String {
        format!("https://{}:{API_PORT}", self.placement.client_ip)
    }

    /// The API URL other clusters use.
    pub fn peer_url(&self) -> String {
        format!("https://{}:{API_PORT}", self.placement.peer_ip)
    }

    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// Starts the server and waits until it answers `sys/seal-status`.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let log = File::options().create(true).append(true).open(&self.log)?;
        let mut cmd = match &self.placement.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        // If the drill itself dies (Ctrl-C, SIGKILL) its servers die with it; Drop guards
        // cover every other exit.
        crate::sys::kill_child_with_parent(&mut cmd);
        cmd.arg("server")
            .arg(format!("-config={}", self.config.display()))
            .env("HOME", &self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                bail!(
                    "{} exited during startup ({status}); see {}",
                    self.name,
                    self.log.display()
                );
            }
            if let Ok(r) = self
                .client
                .get(format!("{}/v1/sys/seal-status", self.url()))
                .send()
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer within 60s; see {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(c.id()) {
            // a child we spawned and have not reaped yet
            crate::sys::terminate(pid);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// An authenticated request.
    pub fn req(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/v1/{path}", self.url()))
            .header("X-Vault-Token", token)
    }

    /// Sends `req` and returns the JSON body of a 2xx answer, or an error with the body.
    pub fn call(&self, req: RequestBuilder, what: &str) -> Result<Value> {
        let r = req
            .send()
            .with_context(|| format!("{what} on {}", self.name))?;
        let status = r.status();
        let body = r.text().unwrap_or_default();
        if !status.is_success() {
            bail!("{what} on {} answered {status}: {body}", self.name);
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: answer is not JSON"))
    }

    /// `sys/init` with one share; unseals and returns the root token.
    pub fn init(&mut self) -> Result<String> {
        let r = self.call(
            self.client
                .put(format!("{}/v1/sys/init", self.url()))
                .json(&json!({"secret_shares": 1, "secret_threshold": 1})),
            "sys/init",
        )?;
        let keys: Vec<String> = r["keys"]
            .as_array()
            .ok_or_else(|| anyhow!("sys/init returned no keys"))?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        let root = r["root_token"]
            .as_str()
            .ok_or_else(|| anyhow!("sys/init returned no root token"))?
            .to_string();
        self.keys = keys;
        self.unseal()?;
        Ok(root)
    }

    /// Unseals with the keys in force.
    pub fn unseal(&self) -> Result<()> {
        for k in &self.keys {
            let r = self.call(
                self.client
                    .put(format!("{}/v1/sys/unseal", self.url()))
                    .json(&json!({"key": k})),
                "sys/unseal",
            )?;
            if r["sealed"] == false {
                return Ok(());
            }
        }
        bail!("{} is still sealed after every key", self.name)
    }

    /// `sys/seal-status` (unauthenticated, answered by the node itself).
    pub fn seal_status(&self) -> Result<Value> {
        self.call(
            self.client
                .get(format!("{}/v1/sys/seal-status", self.url())),
            "sys/seal-status",
        )
    }

    /// `sys/replication/dr/status` `data` (unauthenticated).
    pub fn dr_status(&self) -> Result<Value> {
        let r = self.call(
            self.client
                .get(format!("{}/v1/sys/replication/dr/status", self.url())),
            "dr/status",
        )?;
        Ok(r["data"].clone())
    }

    /// Prometheus text of `sys/metrics` (needs a token; primaries only; a DR secondary
    /// answers without one, since every drill listener allows unauthenticated metrics).
    pub fn metrics(&self, token: &str) -> Result<String> {
        let r = self
            .req(Method::GET, "sys/metrics?format=prometheus", token)
            .send()?;
        if !r.status().is_success() {
            bail!("sys/metrics on {} answered {}", self.name, r.status());
        }
        Ok(r.text()?)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
    }
}
