//! Standby heartbeats: how the active node knows its standbys, and a standby knows it can
//! reach the active node.
//!
//! Each standby sends the active node an echo over the forwarding channel every couple of
//! seconds, naming its addresses. The active node keeps the latest echo per node for
//! `sys/ha-status`; the standby keeps whether its last echo got through, which is what
//! `sys/health` reports as `ha_connection_healthy` (474 when it did not).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::Core;
use crate::util::lock;

/// Echoes older than this drop out of `sys/ha-status`.
const ECHO_FORGET_AFTER: Duration = Duration::from_secs(60);
/// A standby whose last successful echo is older than this is unhealthy (474).
pub const ECHO_UNHEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How many standbys the active node remembers.
const MAX_STANDBYS: usize = 256;

/// What a standby says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyEcho {
    pub node_id: String,
    pub hostname: String,
    pub api_addr: String,
    pub cluster_addr: String,
    pub version: String,
    pub last_echo: SystemTime,
}

/// The active node's memory of its standbys, and a standby's of its last echo.
#[derive(Default)]
pub(crate) struct StandbyRegistry {
    standbys: Mutex<BTreeMap<String, StandbyEcho>>,
    /// On a standby: when an echo last reached the active node, and how long it took.
    last_ok: Mutex<Option<(Instant, Duration)>>,
}

impl StandbyRegistry {
    fn record(&self, echo: StandbyEcho) {
        let mut map = lock(&self.standbys);
        let now = SystemTime::now();
        map.retain(|_, e| now.duration_since(e.last_echo).unwrap_or_default() < ECHO_FORGET_AFTER);
        if map.len() >= MAX_STANDBYS && !map.contains_key(&echo.node_id) {
            return;
        }
        map.insert(echo.node_id.clone(), echo);
    }

    fn list(&self) -> Vec<StandbyEcho> {
        let now = SystemTime::now();
        lock(&self.standbys)
            .values()
            .filter(|e| now.duration_since(e.last_echo).unwrap_or_default() < ECHO_FORGET_AFTER)
            .cloned()
            .collect()
    }
}

impl Core {
    /// On the active node: a standby's echo arrived over the forwarding channel.
    pub fn record_standby_echo(
        &self,
        node_id: &str,
        hostname: &str,
        api_addr: &str,
        cluster_addr: &str,
        version: &str,
    ) {
        self.ha.standbys.record(StandbyEcho {
            node_id: node_id.to_owned(),
            hostname: hostname.to_owned(),
            api_addr: api_addr.to_owned(),
            cluster_addr: cluster_addr.to_owned(),
            version: version.to_owned(),
            last_echo: SystemTime::now(),
        });
    }

    /// The standbys heard from recently.
    pub fn standby_echoes(&self) -> Vec<StandbyEcho> {
        self.ha.standbys.list()
    }

    /// On a standby: an echo reached the active node after `took`.
    pub fn echo_succeeded(&self, took: Duration) {
        *lock(&self.ha.standbys.last_ok) = Some((Instant::now(), took));
    }

    /// On a standby: whether the active node answered an echo recently, and the age of the
    /// last answered echo in milliseconds.
    pub fn ha_connection(&self) -> (bool, Option<u64>, Option<u64>) {
        match *lock(&self.ha.standbys.last_ok) {
            Some((at, took)) => {
                let age = at.elapsed();
                (
                    age < ECHO_UNHEALTHY_AFTER,
                    Some(age.as_millis() as u64),
                    Some(took.as_millis() as u64),
                )
            }
            None => (false, None, None),
        }
    }
}
