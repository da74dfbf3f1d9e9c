//! The autopilot loop on the active node, and its two endpoints.
//!
//! The rules are in `crate::autopilot` (sans-IO); this file feeds them the leader's view every
//! couple of seconds and carries out what they decide through Raft. Only the active node runs
//! it, and every action is a membership change the Raft leader alone can commit.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::autopilot::{Action, AutopilotConfig, ClusterView};
use crate::util::lock;
use crate::{Core, CoreError, Request, Response};

/// How often the loop runs (Vault's `autopilot_update_interval` default).
pub(crate) const TICK: Duration = Duration::from_secs(2);

/// What the planner reads, gathered once per round.
struct Inputs {
    config: AutopilotConfig,
    pinned: std::collections::BTreeSet<String>,
    servers: Vec<strongroom_storage::ServerInfo>,
    last_index: u64,
    last_term: u64,
}

impl Inputs {
    fn view(&self) -> ClusterView<'_> {
        ClusterView {
            servers: &self.servers,
            last_index: self.last_index,
            last_term: self.last_term,
            stay_non_voters: &self.pinned,
        }
    }
}

impl Core {
    async fn autopilot_inputs(
        &self,
        cluster: &dyn strongroom_storage::Cluster,
    ) -> Result<Inputs, CoreError> {
        Ok(Inputs {
            config: self.autopilot_config().await?,
            pinned: self.non_voters().await?,
            servers: cluster.servers(),
            last_index: self.storage.status().committed_index,
            last_term: cluster.leadership().borrow().term,
        })
    }

    pub(crate) async fn autopilot_config(&self) -> Result<AutopilotConfig, CoreError> {
        match self.barrier.get(crate::keys::AUTOPILOT_CONFIG).await? {
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| {
                CoreError::Internal(format!("the autopilot configuration is corrupt: {e}"))
            }),
            None => Ok(AutopilotConfig::default()),
        }
    }

    /// One autopilot round: promote stable joiners, remove dead servers when configured.
    pub(crate) async fn autopilot_tick(&self) -> Result<(), CoreError> {
        let Some(cluster) = self.cluster().cloned() else {
            return Ok(());
        };
        if !self.serving() {
            return Ok(());
        }
        let inputs = self.autopilot_inputs(cluster.as_ref()).await?;
        let actions = lock(&self.ha.planner).tick(&inputs.config, SystemTime::now(), inputs.view());
        for action in actions {
            match action {
                Action::Promote(id) => {
                    tracing::info!(server_id = %id, "autopilot: promoting a stable non-voter to voter");
                    cluster.set_voter(&id, true).await?;
                }
                Action::Remove(id) => {
                    tracing::warn!(server_id = %id, "autopilot: removing a dead server");
                    cluster.remove(&id).await?;
                }
            }
        }
        Ok(())
    }

    /// `GET|POST sys/storage/raft/autopilot/configuration`.
    pub(crate) async fn autopilot_configuration(
        &self,
        req: &Request,
    ) -> Result<Response, CoreError> {
        self.cluster().ok_or_else(super::join_leader::not_raft)?;
        let current = self.autopilot_config().await?;
        if !crate::pipeline::writes(req.operation) {
            return Ok(Response::with_data(current.to_data()));
        }
        let updated = current.updated(&req.data)?;
        let raw = serde_json::to_vec(&updated).map_err(|e| {
            CoreError::Internal(format!("encoding the autopilot configuration: {e}"))
        })?;
        self.barrier
            .put(crate::keys::AUTOPILOT_CONFIG, &raw)
            .await?;
        Ok(Response::no_content())
    }

    /// `GET sys/storage/raft/autopilot/state`.
    pub(crate) async fn autopilot_state(&self) -> Result<Response, CoreError> {
        let cluster = self
            .cluster()
            .cloned()
            .ok_or_else(super::join_leader::not_raft)?;
        let inputs = self.autopilot_inputs(cluster.as_ref()).await?;
        let state = lock(&self.ha.planner).state(
            &inputs.config,
            SystemTime::now(),
            inputs.view(),
            strongroom_api::VAULT_COMPAT_VERSION,
        );
        let data: Map<String, Value> = state.to_data()?;
        Ok(Response::with_data(data))
    }
}
