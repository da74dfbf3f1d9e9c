//! The active node's half of the two-phase join.
//!
//! Phase one (`sys/storage/raft/bootstrap/challenge`) hands a joiner a nonce sealed under the
//! root key; phase two (`.../bootstrap/answer`) checks the recovered nonce in constant time and
//! only then issues the joiner a cluster-port certificate and adds it to Raft as a non-voter.
//! Both are unauthenticated, as in Vault (a joiner has no token), so the pending challenges are
//! bounded in number and age, single use, and bound to the server id they were made for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::params::bool_param;
use crate::util::{lock, str_param};
use crate::{Core, CoreError, Request, Response};

/// How long a challenge can be answered.
const CHALLENGE_TTL: Duration = Duration::from_secs(120);
/// Most challenges outstanding at once.
const MAX_CHALLENGES: usize = 64;
/// Longest node id accepted.
const MAX_SERVER_ID: usize = 128;

/// Outstanding challenges by server id.
#[derive(Default)]
pub(crate) struct Challenges(Mutex<HashMap<String, Issued>>);

/// A nonce handed out, and when.
struct Issued {
    nonce: Zeroizing<Vec<u8>>,
    at: Instant,
}

impl Challenges {
    fn insert(&self, server_id: &str, nonce: Zeroizing<Vec<u8>>) -> Result<(), CoreError> {
        let mut map = lock(&self.0);
        map.retain(|_, issued| issued.at.elapsed() < CHALLENGE_TTL);
        if map.len() >= MAX_CHALLENGES && !map.contains_key(server_id) {
            return Err(CoreError::InvalidRequest(format!(
                "too many raft join challenges are outstanding (at most {MAX_CHALLENGES}); retry in {} seconds",
                CHALLENGE_TTL.as_secs()
            )));
        }
        map.insert(
            server_id.to_owned(),
            Issued {
                nonce,
                at: Instant::now(),
            },
        );
        Ok(())
    }

    fn take(&self, server_id: &str) -> Option<Zeroizing<Vec<u8>>> {
        let issued = lock(&self.0).remove(server_id)?;
        (issued.at.elapsed() < CHALLENGE_TTL).then_some(issued.nonce)
    }
}

fn server_id(req: &Request) -> Result<String, CoreError> {
    let id = str_param(&req.data, "server_id")?.unwrap_or("").trim();
    if id.is_empty() {
        return Err(CoreError::InvalidRequest("no server id provided".into()));
    }
    if id.len() > MAX_SERVER_ID || id.chars().any(|c| c.is_control()) {
        return Err(CoreError::InvalidRequest(format!(
            "server id must be at most {MAX_SERVER_ID} printable characters"
        )));
    }
    Ok(id.to_owned())
}

impl Core {
    /// `POST sys/storage/raft/bootstrap/challenge`.
    pub(crate) async fn raft_bootstrap_challenge(
        &self,
        req: &Request,
    ) -> Result<Response, CoreError> {
        self.cluster().ok_or_else(not_raft)?;
        let id = server_id(req)?;
        let c = self.barrier.join_challenge(&id).await?;
        self.ha.challenges.insert(&id, c.nonce)?;
        let seal = strongroom_barrier::SealConfig::load(self.storage.as_ref())
            .await?
            .ok_or_else(|| CoreError::Internal("seal configuration missing from storage".into()))?;
        let mut data = Map::new();
        data.insert("challenge".into(), json!(B64.encode(&c.challenge)));
        data.insert(
            "sealed_root_key".into(),
            json!(B64.encode(&c.sealed_root_key)),
        );
        data.insert(
            "seal_config".into(),
            json!({
                "type": "shamir",
                "secret_shares": seal.secret_shares,
                "secret_threshold": seal.secret_threshold,
            }),
        );
        Ok(Response::with_data(data))
    }

    /// `POST sys/storage/raft/bootstrap/answer`.
    pub(crate) async fn raft_bootstrap_answer(&self, req: &Request) -> Result<Response, CoreError> {
        let cluster = self.cluster().cloned().ok_or_else(not_raft)?;
        let id = server_id(req)?;
        let answer = str_param(&req.data, "answer")?
            .and_then(|a| B64.decode(a).ok())
            .ok_or_else(|| {
                CoreError::InvalidRequest("no answer provided, or it is not base64".into())
            })?;
        let cluster_addr = str_param(&req.data, "cluster_addr")?
            .map(|a| a.trim().trim_start_matches("https://").to_owned())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| CoreError::InvalidRequest("no cluster address provided".into()))?;
        let non_voter = bool_param(&req.data, "non_voter")?.unwrap_or(false);
        let expected = self.ha.challenges.take(&id).ok_or_else(|| {
            CoreError::InvalidRequest("no expected answer for the server id provided".into())
        })?;
        if !bool::from(expected.as_slice().ct_eq(answer.as_slice())) {
            return Err(CoreError::InvalidRequest("invalid answer given".into()));
        }
        let creds = self.issue_node_credentials(&id).await?;
        if non_voter {
            self.pin_non_voter(&id, true).await?;
        }
        cluster.add_non_voter(&id, &cluster_addr).await?;
        tracing::info!(server_id = %id, cluster_addr = %cluster_addr, non_voter, "a node answered the join challenge and was added to raft");
        let peers: Vec<Value> = cluster
            .servers()
            .iter()
            .map(|s| json!({"id": s.node_id, "address": s.cluster_addr}))
            .collect();
        let mut data = Map::new();
        data.insert("peers".into(), Value::Array(peers));
        data.insert(
            "node_credentials".into(),
            serde_json::to_value(&creds)
                .map_err(|e| CoreError::Internal(format!("encoding the node credentials: {e}")))?,
        );
        Ok(Response::with_data(data))
    }

    /// Records (or forgets) that `node_id` joined as a non-voter and stays one.
    pub(crate) async fn pin_non_voter(&self, node_id: &str, pinned: bool) -> Result<(), CoreError> {
        let mut set = self.non_voters().await?;
        let changed = if pinned {
            set.insert(node_id.to_owned())
        } else {
            set.remove(node_id)
        };
        if changed {
            let raw = serde_json::to_vec(&set)
                .map_err(|e| CoreError::Internal(format!("encoding the non-voter set: {e}")))?;
            self.barrier.put(crate::keys::RAFT_NON_VOTERS, &raw).await?;
        }
        Ok(())
    }

    /// The node ids pinned as non-voters.
    pub(crate) async fn non_voters(&self) -> Result<std::collections::BTreeSet<String>, CoreError> {
        match self.barrier.get(crate::keys::RAFT_NON_VOTERS).await? {
            Some(raw) => serde_json::from_slice(&raw)
                .map_err(|e| CoreError::Internal(format!("the non-voter set is corrupt: {e}"))),
            None => Ok(Default::default()),
        }
    }
}

pub(crate) fn not_raft() -> CoreError {
    CoreError::InvalidRequest("raft storage is not in use on this node".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(b: u8) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(vec![b; 32])
    }

    #[test]
    fn a_challenge_answers_once_and_only_for_its_server_id() {
        // Set up: one outstanding challenge for node-2.
        let c = Challenges::default();
        c.insert("node-2", nonce(7)).unwrap();

        // Act and assert: another id finds nothing; node-2's is taken once, then gone.
        assert!(c.take("node-3").is_none());
        assert_eq!(c.take("node-2").unwrap().as_slice(), &[7u8; 32]);
        assert!(c.take("node-2").is_none());
    }

    #[test]
    fn outstanding_challenges_are_bounded() {
        // Why: the challenge endpoint is unauthenticated; a flood must not grow memory.
        let c = Challenges::default();
        for i in 0..MAX_CHALLENGES {
            c.insert(&format!("node-{i}"), nonce(1)).unwrap();
        }
        assert!(c.insert("one-too-many", nonce(1)).is_err());
        // A node asking again replaces its own challenge rather than being refused.
        c.insert("node-0", nonce(2)).unwrap();
        assert_eq!(c.take("node-0").unwrap().as_slice(), &[2u8; 32]);
    }
}
