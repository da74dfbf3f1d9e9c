//! The connection's life: heartbeats and liveness, dialing the primary's nodes in turn,
//! following a standby's redirect to the active node, and reconnecting with backoff.

use super::*;

impl SecondaryFsm {
    pub(super) fn tick(&mut self, out: &mut Vec<Output>) {
        if !self.connected() {
            return;
        }
        let silent = self.now_ms.saturating_sub(self.last_heard_ms);
        if silent > IDLE_TIMEOUT_MS {
            self.reconnect(
                format!("the primary was silent for {} ms", silent),
                true,
                out,
            );
            return;
        }
        if self.now_ms.saturating_sub(self.last_sent_hb_ms) >= HEARTBEAT_INTERVAL_MS {
            self.last_sent_hb_ms = self.now_ms;
            let last_applied = match &self.phase {
                Some(Phase::Stream { applied }) => applied.index,
                _ => 0,
            };
            let (echo_unix_ms, echo_held_ms) = match self.primary_hb {
                Some((theirs, received)) => (theirs, self.now_ms.saturating_sub(received)),
                None => (0, 0),
            };
            out.push(Output::Send(SecondaryMsg::Heartbeat {
                unix_ms: self.now_ms,
                last_applied,
                echo_unix_ms,
                echo_held_ms,
            }));
        }
    }

    /// Follows a primary standby's redirect: the named active node next, after a short pause.
    pub(super) fn redirected(
        &mut self,
        active_cluster_addr: Option<String>,
        out: &mut Vec<Output>,
    ) {
        self.status.redirects += 1;
        self.short_pauses = FREE_REDIRECTS;
        metrics::counter!(m::names(self.cfg.kind).redirects_total).increment(1);
        let active = active_cluster_addr.filter(|a| !a.is_empty());
        let delay = match &active {
            Some(_) => {
                if self.redirect_streak < FREE_REDIRECTS {
                    self.backoff.reset();
                }
                self.redirect_streak = self.redirect_streak.saturating_add(1);
                self.backoff.next_delay()
            }
            // Mid-election: ask again soon, but a primary without quorum must not be dialed
            // at full speed for as long as it lasts.
            None => self.backoff.next_delay().min(ELECTION_RETRY_MAX),
        };
        let reason = match &active {
            Some(a) => format!("redirected by a primary standby to the active node {a}"),
            None => "the primary cluster has no active node yet (election in progress)".to_owned(),
        };
        tracing::debug!(%reason, "{} primary standby redirected us", self.cfg.kind.label());
        self.prefer = active;
        out.push(Output::Disconnect);
        self.status.last_error = Some(reason);
        self.status.connection_state = "transient_failure";
        self.phase = None;
        out.push(Output::Sleep(delay));
        self.dial(out);
    }

    pub(super) fn learn_addrs(&mut self, addrs: Vec<String>, out: &mut Vec<Output>) {
        if !addrs.is_empty() && addrs != self.status.known_primary_cluster_addrs {
            self.status.known_primary_cluster_addrs = addrs.clone();
            out.push(Output::KnownAddrs(addrs));
        }
    }

    pub(super) fn dial(&mut self, out: &mut Vec<Output>) {
        let addrs = self.addresses();
        self.state = State::Connecting;
        if addrs.is_empty() {
            self.phase = None;
            self.state = State::Idle;
            self.status.connection_state = "idle";
            self.status.last_error = Some("no primary cluster address is known".into());
            return;
        }
        let addr = match self.prefer.take() {
            Some(preferred) => preferred,
            None => {
                let addr = addrs[(self.dial_count % addrs.len() as u64) as usize].clone();
                self.dial_count += 1;
                addr
            }
        };
        self.phase = Some(Phase::Dialing);
        self.status.connection_state = "connecting";
        self.status.current_addr = Some(addr.clone());
        out.push(Output::Connect(addr));
    }

    pub(super) fn reconnect(&mut self, reason: String, close: bool, out: &mut Vec<Output>) {
        if close {
            out.push(Output::Disconnect);
        }
        self.status.last_error = Some(reason);
        self.status.connection_state = "transient_failure";
        self.phase = None;
        let mut delay = self.backoff.next_delay();
        if self.short_pauses > 0 {
            self.short_pauses -= 1;
            delay = delay.min(ELECTION_RETRY_MAX);
        }
        out.push(Output::Sleep(delay));
        self.dial(out);
    }
}
