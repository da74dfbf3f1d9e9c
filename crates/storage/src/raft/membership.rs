//! Membership and leadership: how a node joins, leaves and hands over a cluster.
//!
//! openraft already decides membership through the log; what this adds is the operator's
//! vocabulary (node ids, voters and non-voters, "removed") and the guards an operator needs:
//! the last voter cannot be demoted or removed (the cluster would have no quorum to undo it),
//! and removal is remembered by the removed node itself, across restarts, because nothing else
//! will tell it once the cluster stops replicating to it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::{ChangeMembers, RaftMetrics, ServerState};

use super::types::{RaftNode, TypeConfig, raft_id_for};
use super::{RaftStorage, db, network, removal, write_error};
use crate::{BoxStream, Cluster, Leadership, ServerInfo, StorageError};

/// How long a membership change waits for an earlier one to commit.
const CHANGE_IN_FLIGHT_WAIT: Duration = Duration::from_secs(15);

/// How long `remove` waits for the removed node to take the news.
const REMOVED_NOTICE_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the task that turns openraft's metrics into [`Leadership`]. It ends when Raft shuts
/// down (the metrics channel closes) and holds the log database only weakly, so shutdown can
/// still release the file.
pub(super) fn follow(s: &RaftStorage) {
    let mut metrics = s.raft.metrics();
    let tx = s.leadership.clone();
    let removed = s.removed.clone();
    let log = Arc::downgrade(&s.log_db);
    let me = s.raft_id;
    // A leader that has not heard from a quorum for a full election timeout may already have
    // been replaced; it stops calling itself leader (and core stops serving) rather than wait
    // to hear of the new term, as Vault's leader steps down on losing its quorum.
    let lease = Duration::from_millis(s.tuning.election_timeout_ms().1);
    tokio::spawn(async move {
        let mut was_member = false;
        loop {
            let (mut next, excluded) = {
                let m = metrics.borrow_watched();
                let committed = m.committed_membership_config.membership();
                let listed = committed.get_node(&me).is_some();
                let excluded = was_member && !listed && committed.nodes().next().is_some();
                was_member |= listed;
                (leadership_of(&m, me, lease), excluded)
            };
            if excluded && !removed.swap(true, Ordering::SeqCst) {
                tracing::warn!("a committed raft membership no longer lists this node: removed");
                if let Some(log) = log.upgrade() {
                    let persisted = db::blocking(move || removal::persist(&log)).await;
                    if let Err(e) = persisted {
                        tracing::warn!(error = %e, "recording that this node was removed");
                    }
                }
            }
            next.removed = removed.load(Ordering::SeqCst);
            tx.send_if_modified(|cur| {
                let changed = *cur != next;
                *cur = next;
                changed
            });
            // Acks that stop arriving change no metric: re-check the lease on a timer too.
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return; },
                () = tokio::time::sleep(lease / 4) => {}
            }
        }
    });
}

/// Leadership as `m` shows it (without the removed flag). With other voters, leading also
/// needs a quorum's acknowledgement within `lease`.
fn leadership_of(m: &RaftMetrics<TypeConfig>, me: u64, lease: Duration) -> Leadership {
    let membership = m.membership_config.membership();
    let alone = membership.voter_ids().all(|id| id == me);
    let acked = alone
        || m.last_quorum_acked
            .as_ref()
            .is_some_and(|at| openraft::Instant::elapsed(&**at) < lease);
    Leadership {
        term: m.current_term,
        leader: m
            .current_leader
            .and_then(|id| membership.get_node(&id))
            .map(|n| n.node_id.clone()),
        is_self: m.state == ServerState::Leader && m.current_leader == Some(me) && acked,
        removed: false,
    }
}

impl RaftStorage {
    fn metrics_now(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// Waits (briefly) until the published metrics show a change that has committed, so the
    /// next call, which reads them, sees it too.
    async fn settle(
        &self,
        shown: impl Fn(&RaftMetrics<TypeConfig>) -> bool + Send + Sync + 'static,
    ) {
        let waited = self
            .raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(shown, "membership change published")
            .await;
        if waited.is_err() {
            tracing::warn!("a committed membership change is not yet visible in the raft metrics");
        }
    }

    /// Takes this node's turn to change membership, once any change in flight (ours, an
    /// autopilot promotion, or one a previous leader started) has committed: openraft refuses a
    /// second change meanwhile, and Vault's operators expect theirs to wait, not fail.
    async fn membership_turn(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, StorageError> {
        let guard = self.membership_changes.lock().await;
        let settled = self
            .raft
            .wait(Some(CHANGE_IN_FLIGHT_WAIT))
            .metrics(
                |m| m.membership_config.log_id() == m.committed_membership_config.log_id(),
                "no membership change in flight",
            )
            .await;
        if settled.is_err() {
            return Err(StorageError::NotLeader(format!(
                "an earlier raft membership change did not commit within {}s; retry once the cluster has a stable leader",
                CHANGE_IN_FLIGHT_WAIT.as_secs()
            )));
        }
        Ok(guard)
    }

    /// Records durably that the cluster removed this node and publishes it.
    pub(super) async fn mark_removed(&self) -> Result<(), StorageError> {
        let log = self.log_db.clone();
        db::blocking(move || removal::persist(&log))
            .await
            .map_err(|e| StorageError::io("recording that this node was removed", e))?;
        self.removed.store(true, Ordering::SeqCst);
        self.leadership.send_if_modified(|cur| {
            let changed = !cur.removed;
            cur.removed = true;
            changed
        });
        Ok(())
    }

    /// Refuses membership changes anywhere but on the leader of the current term.
    fn require_leader(&self, m: &RaftMetrics<TypeConfig>) -> Result<(), StorageError> {
        if m.state == ServerState::Leader && m.current_leader == Some(self.raft_id) {
            return Ok(());
        }
        let leader = m
            .current_leader
            .and_then(|id| m.membership_config.membership().get_node(&id).cloned());
        Err(StorageError::NotLeader(super::not_leader_message(
            leader.as_ref(),
        )))
    }
}

fn voters(m: &RaftMetrics<TypeConfig>) -> BTreeSet<u64> {
    m.membership_config.membership().voter_ids().collect()
}

#[async_trait]
impl Cluster for RaftStorage {
    async fn is_member(&self) -> Result<bool, StorageError> {
        if !self.initialized().await? {
            return Ok(false);
        }
        let m = self.metrics_now();
        Ok(m.membership_config.membership().nodes().next().is_some())
    }

    /// Idempotent: on a node that is already a member this only waits as `open` does.
    async fn bootstrap(&self) -> Result<(), StorageError> {
        self.initialize_single().await
    }

    async fn add_non_voter(&self, node_id: &str, cluster_addr: &str) -> Result<(), StorageError> {
        let _turn = self.membership_turn().await?;
        let m = self.metrics_now();
        self.require_leader(&m)?;
        let id = raft_id_for(node_id);
        if let Some(known) = m.membership_config.membership().get_node(&id) {
            if known.cluster_addr == cluster_addr {
                return Ok(());
            }
            return Err(StorageError::Rejected(format!(
                "node {node_id} is already a member at {}; remove it before adding it at {cluster_addr}",
                known.cluster_addr
            )));
        }
        let node = RaftNode {
            node_id: node_id.to_owned(),
            cluster_addr: cluster_addr.to_owned(),
        };
        self.raft
            .add_learner(id, node, false)
            .await
            .map_err(write_error)?;
        self.settle(move |m| m.membership_config.membership().get_node(&id).is_some())
            .await;
        tracing::info!(node_id, cluster_addr, "added a raft non-voter");
        Ok(())
    }

    async fn set_voter(&self, node_id: &str, voter: bool) -> Result<(), StorageError> {
        let _turn = self.membership_turn().await?;
        let m = self.metrics_now();
        self.require_leader(&m)?;
        let id = raft_id_for(node_id);
        if m.membership_config.membership().get_node(&id).is_none() {
            return Err(StorageError::Rejected(format!(
                "node {node_id} is not a member of the raft cluster"
            )));
        }
        let voters = voters(&m);
        if voters.contains(&id) == voter {
            return Ok(());
        }
        let change = if voter {
            ChangeMembers::AddVoterIds(BTreeSet::from([id]))
        } else {
            if voters.len() == 1 {
                return Err(StorageError::Rejected(format!(
                    "node {node_id} is the last voter; demoting it would leave the cluster without a quorum"
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        };
        // Demoted voters stay as non-voters (retain).
        self.raft
            .change_membership(change, true)
            .await
            .map_err(write_error)?;
        self.settle(move |m| {
            m.membership_config
                .membership()
                .voter_ids()
                .any(|v| v == id)
                == voter
        })
        .await;
        tracing::info!(node_id, voter, "changed a raft member's vote");
        Ok(())
    }

    async fn remove(&self, node_id: &str) -> Result<(), StorageError> {
        let _turn = self.membership_turn().await?;
        let m = self.metrics_now();
        self.require_leader(&m)?;
        let id = raft_id_for(node_id);
        let Some(node) = m.membership_config.membership().get_node(&id).cloned() else {
            return Ok(());
        };
        let voters = voters(&m);
        let change = if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(StorageError::Rejected(format!(
                    "node {node_id} is the last voter; removing it would leave the cluster without a quorum"
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(write_error)?;
        self.settle(move |m| m.membership_config.membership().get_node(&id).is_none())
            .await;
        tracing::info!(node_id, "removed a raft member");
        if id == self.raft_id {
            return self.mark_removed().await;
        }
        let term = m.current_term;
        if let Err(e) =
            network::send_removed(self.dialer.clone(), node, term, REMOVED_NOTICE_TIMEOUT).await
        {
            tracing::warn!(node_id, error = %e, "could not tell the removed node; it learns on its next contact");
        }
        Ok(())
    }

    async fn step_down(&self) -> Result<(), StorageError> {
        let m = self.metrics_now();
        self.require_leader(&m)?;
        let replication = m.replication.clone().unwrap_or_default();
        let Some(to) = voters(&m)
            .into_iter()
            .filter(|id| *id != self.raft_id)
            .max_by_key(|id| replication.get(id).cloned().flatten().map(|l| l.index))
        else {
            return Err(StorageError::Rejected(
                "no other voter to hand leadership to".into(),
            ));
        };
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| StorageError::io("handing over raft leadership", e))?;
        let me = self.raft_id;
        self.raft
            .wait(Some(self.tuning.leader_timeout))
            .metrics(
                move |m| m.current_leader.is_some() && m.current_leader != Some(me),
                "another voter leads",
            )
            .await
            .map_err(|e| StorageError::NotLeader(format!("leadership was not handed over: {e}")))?;
        Ok(())
    }

    fn servers(&self) -> Vec<ServerInfo> {
        let m = self.metrics_now();
        let voters = voters(&m);
        let replication = m.replication.clone().unwrap_or_default();
        let heartbeat = m.heartbeat.clone().unwrap_or_default();
        let wall = SystemTime::now();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, node)| {
                let matched = if *id == self.raft_id {
                    m.last_applied
                } else {
                    replication.get(id).cloned().flatten()
                };
                let last_contact = heartbeat
                    .get(id)
                    .cloned()
                    .flatten()
                    .map(|at| wall - openraft::Instant::elapsed(&*at));
                ServerInfo {
                    node_id: node.node_id.clone(),
                    cluster_addr: node.cluster_addr.clone(),
                    voter: voters.contains(id),
                    leader: m.current_leader == Some(*id),
                    last_contact,
                    last_index: matched.map_or(0, |l| l.index),
                    last_term: matched.map_or(0, |l| l.committed_leader_id().term),
                }
            })
            .collect()
    }

    fn leadership(&self) -> tokio::sync::watch::Receiver<Leadership> {
        self.leadership.subscribe()
    }

    async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), StorageError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "applied index")
            .await
            .map(drop)
            .map_err(|e| StorageError::io(format!("waiting to apply raft index {index}"), e))
    }

    async fn serve_stream(&self, stream: BoxStream, peer: String) {
        network::serve(self, stream, &peer).await;
    }
}
