//! The joining node's half of the two-phase join.
//!
//! Phase one asks a leader for a challenge and keeps it (`PendingJoin`); from then on the node
//! reports itself initialized with the cluster's seal configuration, so `operator unseal`
//! works on it as on any member. Phase two happens inside unseal: the shares give the unseal
//! key, the key opens the challenge, the answer earns a cluster-port certificate, Raft then
//! ships the cluster's data, and only once that data holds the barrier's keyring does the
//! barrier open, with the same key. A wrong key fails before anything is sent.
//!
//! Between the phases the operator may take minutes, and the leader that issued the
//! challenge may be gone by then (killed, stepped down, or its challenge expired). The unseal
//! call holds the unseal key, so it does not send the operator back to phase one: it asks the
//! join's leader addresses for a fresh challenge and answers that, a few times, before giving up.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use strongroom_barrier::{UnsealKey, answer_join_challenge, combine_shares};

pub use strongroom_replication::LeaderTls;

use crate::util::lock;
use crate::{Core, CoreError};

/// First and longest pause between join attempts with `retry`.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How long unseal waits for Raft to deliver the cluster's data after the answer.
const DATA_WAIT: Duration = Duration::from_secs(120);
/// Answers attempted by one unseal, each after a fresh challenge but the first, and the
/// pause between them (an election takes about a second).
const ANSWER_ATTEMPTS: u32 = 5;
const ANSWER_PAUSE: Duration = Duration::from_secs(1);

/// A join between its two phases.
#[derive(Clone)]
pub(crate) struct PendingJoin {
    /// Every leader address the join was given (asked again for a fresh challenge).
    pub leaders: Vec<(String, LeaderTls)>,
    pub leader_api_addr: String,
    pub tls: LeaderTls,
    pub challenge: Vec<u8>,
    pub sealed_root_key: Vec<u8>,
    pub secret_shares: u32,
    pub secret_threshold: u32,
    pub non_voter: bool,
}

/// What `raft_join` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// A leader issued a challenge; unseal the node with the cluster's keys to finish.
    Challenged,
    /// No leader answered yet; attempts continue in the background (`retry`).
    Retrying,
}

fn field<'a>(data: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    data.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the leader's answer lacks {name}"))
}

impl Core {
    /// `sys/storage/raft/join` and `retry_join`: phase one against the first of `leaders`
    /// that answers. With `retry`, keeps trying in the background until one does.
    pub async fn raft_join(
        &self,
        leaders: Vec<(String, LeaderTls)>,
        retry: bool,
        non_voter: bool,
    ) -> Result<JoinOutcome, CoreError> {
        self.check_can_join().await?;
        if leaders.is_empty() {
            return Err(CoreError::InvalidRequest("no leader_api_addr given".into()));
        }
        if lock(&self.ha.pending_join).is_some() {
            return Ok(JoinOutcome::Challenged);
        }
        match self.try_leaders(&leaders, non_voter).await {
            Ok(()) => return Ok(JoinOutcome::Challenged),
            Err(e) if !retry => {
                return Err(CoreError::InvalidRequest(format!("raft join failed: {e}")));
            }
            Err(e) => tracing::warn!(error = %e, "raft join: no leader answered yet; retrying"),
        }
        let weak = self.ha.core.clone();
        tokio::spawn(async move {
            let mut pause = RETRY_MIN;
            loop {
                tokio::time::sleep(pause).await;
                let Some(core) = weak.upgrade() else { return };
                if core.check_can_join().await.is_err() || lock(&core.ha.pending_join).is_some() {
                    return;
                }
                match core.try_leaders(&leaders, non_voter).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "raft join: no leader answered yet; retrying")
                    }
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
        });
        Ok(JoinOutcome::Retrying)
    }

    /// Refuses a join on a node that already holds a cluster, or was removed from one.
    async fn check_can_join(&self) -> Result<(), CoreError> {
        let cluster = self.cluster().ok_or_else(super::join_leader::not_raft)?;
        if self.removed_from_cluster() {
            return Err(CoreError::InvalidRequest(
                "this node was removed from its raft cluster and still holds its data; wipe its raft data directory before joining again".into(),
            ));
        }
        if cluster.is_member().await? || self.barrier.initialized().await? {
            return Err(CoreError::InvalidRequest(
                "raft join failed: this node is already initialized or part of a raft cluster; only a new node can join".into(),
            ));
        }
        Ok(())
    }

    async fn try_leaders(
        &self,
        leaders: &[(String, LeaderTls)],
        non_voter: bool,
    ) -> Result<(), String> {
        let server_id = self.storage.status().node_id;
        let mut last = String::new();
        for (addr, tls) in leaders {
            let body = json!({ "server_id": server_id });
            match strongroom_replication::post_to_leader(
                addr,
                tls,
                "sys/storage/raft/bootstrap/challenge",
                &body,
            )
            .await
            {
                Ok(data) => {
                    let mut pending = Self::pending_from(addr, tls, non_voter, &data)?;
                    pending.leaders = leaders.to_vec();
                    tracing::info!(leader = %addr, "raft join: challenge received; unseal this node with the cluster's keys to finish joining");
                    *lock(&self.ha.pending_join) = Some(pending);
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn pending_from(
        addr: &str,
        tls: &LeaderTls,
        non_voter: bool,
        data: &Map<String, Value>,
    ) -> Result<PendingJoin, String> {
        let decode = |name: &str| {
            field(data, name).and_then(|v| {
                B64.decode(v)
                    .map_err(|e| format!("{name} is not base64: {e}"))
            })
        };
        let seal = data.get("seal_config").cloned().unwrap_or(Value::Null);
        let num = |name: &str| {
            seal.get(name)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("the leader's seal_config lacks {name}"))
        };
        Ok(PendingJoin {
            leaders: Vec::new(),
            leader_api_addr: addr.to_owned(),
            tls: tls.clone(),
            challenge: decode("challenge")?,
            sealed_root_key: decode("sealed_root_key")?,
            secret_shares: num("secret_shares")?,
            secret_threshold: num("secret_threshold")?,
            non_voter,
        })
    }

    /// The seal shape a joining node reports (the cluster's), if it is between the phases.
    pub(crate) fn pending_join_shape(&self) -> Option<(u32, u32)> {
        lock(&self.ha.pending_join)
            .as_ref()
            .map(|p| (p.secret_threshold, p.secret_shares))
    }

    /// Phase two, from unseal once the threshold of shares is in.
    pub(crate) async fn finish_join(
        &self,
        shares: &[zeroize::Zeroizing<Vec<u8>>],
    ) -> Result<(), CoreError> {
        let Some(pending) = lock(&self.ha.pending_join).clone() else {
            return Err(CoreError::Internal("no raft join is pending".into()));
        };
        let cluster = self
            .cluster()
            .cloned()
            .ok_or_else(super::join_leader::not_raft)?;
        let unseal_key = combine_shares(shares).map_err(|e| {
            CoreError::InvalidRequest(format!(
                "unable to combine the provided key shares ({e}): unseal progress was reset"
            ))
        })?;
        let data = self.answer_challenge(pending, &unseal_key).await?;
        let creds: super::NodeCredentials = data
            .get("node_credentials")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| {
                CoreError::Internal(format!("the leader's node credentials are malformed: {e}"))
            })?
            .ok_or_else(|| CoreError::Internal("the leader sent no node credentials".into()))?;
        self.install_identity(&creds)?;
        self.wait_for_cluster_data(cluster.as_ref()).await?;
        *lock(&self.ha.pending_join) = None;
        self.open_joined_barrier(&unseal_key).await
    }

    /// Answers the pending challenge; when the leader that issued it cannot take the answer,
    /// fetches a fresh one from the join's leaders and answers that.
    async fn answer_challenge(
        &self,
        mut pending: PendingJoin,
        unseal_key: &UnsealKey,
    ) -> Result<Map<String, Value>, CoreError> {
        let server_id = self.storage.status().node_id;
        let mut attempt = 1;
        loop {
            let answer = answer_join_challenge(unseal_key, &pending.sealed_root_key, &pending.challenge, &server_id)
                .map_err(|_| {
                    CoreError::InvalidRequest(
                        "the provided unseal keys do not answer the cluster's join challenge: they are not this cluster's keys; unseal progress was reset".into(),
                    )
                })?;
            let cluster_addr = crate::util::lock(&self.node.advertised).1.clone();
            let body = json!({
                "server_id": server_id,
                "answer": B64.encode(answer.as_slice()),
                "cluster_addr": cluster_addr,
                "non_voter": pending.non_voter,
            });
            let sent = strongroom_replication::post_to_leader(
                &pending.leader_api_addr,
                &pending.tls,
                "sys/storage/raft/bootstrap/answer",
                &body,
            )
            .await;
            let error = match sent {
                Ok(data) => return Ok(data),
                Err(e) => e,
            };
            // The challenge is single use: whatever happens next needs a fresh one.
            *lock(&self.ha.pending_join) = None;
            if attempt >= ANSWER_ATTEMPTS || pending.leaders.is_empty() {
                return Err(CoreError::InvalidRequest(format!(
                    "raft join failed answering the challenge: {error}; run the join again"
                )));
            }
            tracing::warn!(leader = %pending.leader_api_addr, error = %error, attempt, "raft join: the leader did not take the answer; asking for a fresh challenge");
            tokio::time::sleep(ANSWER_PAUSE).await;
            attempt += 1;
            let leaders = pending.leaders.clone();
            if let Err(e) = self.try_leaders(&leaders, pending.non_voter).await {
                tracing::warn!(error = %e, "raft join: no leader issued a fresh challenge yet");
                // Keep what we had, so the next attempt asks again.
                *lock(&self.ha.pending_join) = Some(pending.clone());
                continue;
            }
            match lock(&self.ha.pending_join).clone() {
                Some(fresh) => pending = fresh,
                None => continue,
            }
        }
    }

    async fn wait_for_cluster_data(
        &self,
        cluster: &dyn strongroom_storage::Cluster,
    ) -> Result<(), CoreError> {
        let deadline = Instant::now() + DATA_WAIT;
        loop {
            if cluster.is_member().await? && self.barrier.initialized().await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CoreError::Internal(format!(
                    "joined the raft cluster but its data did not arrive within {}s; check that the leader can reach this node's cluster_addr, then unseal again",
                    DATA_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn open_joined_barrier(&self, key: &UnsealKey) -> Result<(), CoreError> {
        self.barrier.unseal(key).await?;
        tracing::info!("joined the raft cluster and unsealed");
        self.enter_service().await
    }
}
