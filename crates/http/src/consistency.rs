//! Read-after-write consistency: `X-Vault-Index`, `X-Vault-Inconsistent`, `X-Vault-Forward`.
//!
//! A standby serves reads from its own copy of the data, which trails the active node by the
//! replication lag. A client that must read its own writes hands back the `X-Vault-Index` its
//! write's response carried; a node serves that read only once it holds the state, and
//! otherwise answers 412 (Vault's `required index state not present`, which Vault's Go client
//! retries), forwards it to the active node (`X-Vault-Inconsistent: forward-active-node`) or
//! waits a bounded time for it (`await-state`, OpenBao's addition). `X-Vault-Forward:
//! active-node` sends a request to the active node whatever it is.
//!
//! The header value is opaque to clients: standard base64 of a versioned binary record, the
//! cluster id, the Raft index and the replication WAL index. Why the cluster id: an index means
//! nothing in another cluster's log, so a node must recognize a foreign one instead of
//! comparing numbers. Why the WAL index and a version byte: performance replication will carry
//! these headers across clusters and compare WAL positions, and a later layout must be told
//! apart from this one rather than misread. Decoding is strict (exact length, known version)
//! and a bad header is a 400 naming what is wrong.
//!
//! The decision is a pure function of what the request requires and what this node holds
//! ([`decide`]), so every case is tested without a cluster.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderMap;
use strongroom_core::ha::{IndexState, ReadRole};

use crate::parse::BadRequest;

/// The header a write's response carries and a read may present.
pub const INDEX_HEADER: &str = "x-vault-index";
/// What a node does when it lacks the presented state.
pub const INCONSISTENT_HEADER: &str = "x-vault-inconsistent";
/// `active-node`: always serve the request on the active node.
pub const FORWARD_HEADER: &str = "x-vault-forward";
/// Vault's answer when a node lacks the state a request requires (status 412).
pub const STATE_NOT_PRESENT: &str = "required index state not present";
/// The longest `await-state` waits before answering 412 (Vault's best-effort wait for state
/// is two seconds too).
pub const AWAIT_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// The layout version of the encoded state.
const VERSION: u8 = 1;
/// At most this many index states in one request.
const MAX_STATES: usize = 16;
/// A cluster id longer than this is refused (ours are 36-character UUIDs).
const MAX_CLUSTER_ID: usize = 128;
/// Longest header value worth decoding.
const MAX_VALUE_LEN: usize = 4 * (1 + 1 + MAX_CLUSTER_ID + 16).div_ceil(3);

/// Standard base64, with or without padding on input (clients differ).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The header value for `state`.
pub fn encode(state: &IndexState) -> String {
    let id = state.cluster_id.as_bytes();
    let id = &id[..id.len().min(MAX_CLUSTER_ID)];
    let mut raw = Vec::with_capacity(2 + id.len() + 16);
    raw.push(VERSION);
    // MAX_CLUSTER_ID fits in a byte.
    raw.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    raw.extend_from_slice(id);
    raw.extend_from_slice(&state.raft_index.to_be_bytes());
    raw.extend_from_slice(&state.wal_index.to_be_bytes());
    B64.encode(raw)
}

/// Reads one header value back; the error says what is wrong with it.
pub fn decode(value: &str) -> Result<IndexState, String> {
    let value = value.trim();
    if value.len() > MAX_VALUE_LEN {
        return Err(format!("longer than {MAX_VALUE_LEN} characters"));
    }
    let raw = B64
        .decode(value)
        .map_err(|e| format!("not standard base64 ({e})"))?;
    let (&version, rest) = raw.split_first().ok_or("empty")?;
    if version != VERSION {
        return Err(format!(
            "unknown format version {version} (this server reads version {VERSION})"
        ));
    }
    let (&id_len, rest) = rest.split_first().ok_or("truncated")?;
    let id_len = usize::from(id_len);
    if id_len > MAX_CLUSTER_ID || rest.len() != id_len + 16 {
        return Err("wrong length for a version 1 index".into());
    }
    let (id, numbers) = rest.split_at(id_len);
    let cluster_id =
        String::from_utf8(id.to_vec()).map_err(|_| "cluster id is not UTF-8".to_owned())?;
    let (raft, wal) = numbers.split_at(8);
    let number = |b: &[u8]| {
        <[u8; 8]>::try_from(b)
            .map(u64::from_be_bytes)
            .map_err(|_| "truncated".to_owned())
    };
    Ok(IndexState {
        cluster_id,
        raft_index: number(raft)?,
        wal_index: number(wal)?,
    })
}

/// What to do when this node lacks the required state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WhenInconsistent {
    /// 412, for the client to retry (Vault's default).
    #[default]
    Fail,
    /// `forward-active-node`: the active node serves it.
    ForwardActiveNode,
    /// `await-state`: wait up to [`AWAIT_BOUND`], then 412.
    AwaitState,
}

/// What a request asks of the node that serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    /// Every state presented in `X-Vault-Index` (all must be present).
    pub states: Vec<IndexState>,
    pub when: WhenInconsistent,
    /// `X-Vault-Forward: active-node`.
    pub force_active: bool,
}

impl Requirement {
    /// Reads the three headers; a malformed one is a 400.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Requirement, BadRequest> {
        let mut states = Vec::new();
        for value in headers.get_all(INDEX_HEADER) {
            let text = value
                .to_str()
                .map_err(|_| BadRequest::new("invalid X-Vault-Index header: not ASCII"))?;
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if states.len() == MAX_STATES {
                    return Err(BadRequest::new(format!(
                        "invalid X-Vault-Index header: more than {MAX_STATES} index states"
                    )));
                }
                let state = decode(part).map_err(|e| {
                    BadRequest::new(format!(
                        "invalid X-Vault-Index header: {e}; send the value a response's X-Vault-Index carried, unchanged"
                    ))
                })?;
                states.push(state);
            }
        }
        let when = match single(headers, INCONSISTENT_HEADER)? {
            None => WhenInconsistent::Fail,
            Some(v) if v.eq_ignore_ascii_case("fail") => WhenInconsistent::Fail,
            Some(v) if v.eq_ignore_ascii_case("forward-active-node") => {
                WhenInconsistent::ForwardActiveNode
            }
            Some(v) if v.eq_ignore_ascii_case("await-state") => WhenInconsistent::AwaitState,
            Some(_) => {
                return Err(BadRequest::new(
                    "invalid X-Vault-Inconsistent header: expected forward-active-node or await-state",
                ));
            }
        };
        let force_active = match single(headers, FORWARD_HEADER)? {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("active-node") => true,
            Some(_) => {
                return Err(BadRequest::new(
                    "invalid X-Vault-Forward header: expected active-node",
                ));
            }
        };
        Ok(Requirement {
            states,
            when,
            force_active,
        })
    }

    /// Whether a state of a cluster other than `cluster_id` is required.
    pub fn names_other_cluster(&self, cluster_id: &str) -> bool {
        self.states.iter().any(|s| s.cluster_id != cluster_id)
    }

    /// The highest Raft index required of `cluster_id`, and whether a state of another
    /// cluster is required (which no node here can hold).
    fn needed(&self, cluster_id: &str) -> (u64, bool) {
        let raft = self
            .states
            .iter()
            .filter(|s| s.cluster_id == cluster_id)
            .map(|s| s.raft_index)
            .max()
            .unwrap_or(0);
        let foreign = self.states.iter().any(|s| s.cluster_id != cluster_id);
        (raft, foreign)
    }
}

/// The one value of `name`, trimmed; several values are a 400.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, BadRequest> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadRequest::new(format!(
            "the {name} header was given twice"
        )));
    }
    let text = first
        .to_str()
        .map_err(|_| BadRequest::new(format!("invalid {name} header: not ASCII")))?;
    Ok(Some(text.trim()))
}

/// Where a request that may read on this node goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it here now.
    Serve,
    /// 412 `required index state not present`.
    NotPresent,
    /// Hand it to the active node.
    Forward,
    /// Wait until this node holds Raft index `.0` (bounded by [`AWAIT_BOUND`]), then serve, or
    /// 412.
    Await(u64),
    /// Serve it here once this (active) node applied Raft index `.0`, or after the bound
    /// anyway: everything a client can hold was committed by this or an earlier leader.
    ServeAfterApplied(u64),
    /// A performance secondary: wait until the primary's WAL index `.0` streamed here
    /// (bounded by [`AWAIT_BOUND`]), then serve, or 412.
    AwaitRemote(u64),
}

/// Decides a read on the active node of a performance secondary for the states of *other*
/// clusters it requires (its primary's: a client that wrote through this secondary holds
/// the primary's index). `applied_remote_wal` is the primary WAL index streamed here.
pub fn decide_remote(own_cluster_id: &str, applied_remote_wal: u64, req: &Requirement) -> Decision {
    let wal = req
        .states
        .iter()
        .filter(|s| s.cluster_id != own_cluster_id)
        .map(|s| s.wal_index)
        .max()
        .unwrap_or(0);
    if wal <= applied_remote_wal {
        return Decision::Serve;
    }
    match req.when {
        WhenInconsistent::AwaitState => Decision::AwaitRemote(wal),
        WhenInconsistent::Fail | WhenInconsistent::ForwardActiveNode => Decision::NotPresent,
    }
}

/// Decides a request by what it requires and what this node holds.
pub fn decide(role: &ReadRole, req: &Requirement) -> Decision {
    match role {
        ReadRole::Active { state } => {
            let (raft, _) = req.needed(&state.cluster_id);
            if raft > state.raft_index {
                Decision::ServeAfterApplied(raft)
            } else {
                Decision::Serve
            }
        }
        ReadRole::StandbyReads { state } => {
            if req.force_active {
                return Decision::Forward;
            }
            let (raft, foreign) = req.needed(&state.cluster_id);
            if !foreign && raft <= state.raft_index {
                return Decision::Serve;
            }
            match req.when {
                WhenInconsistent::Fail => Decision::NotPresent,
                WhenInconsistent::ForwardActiveNode => Decision::Forward,
                // Another cluster's state never arrives here by waiting.
                WhenInconsistent::AwaitState if foreign => Decision::NotPresent,
                WhenInconsistent::AwaitState => Decision::Await(raft),
            }
        }
        ReadRole::StandbyForwarding => Decision::Forward,
        // Sealed or between roles: the door gives the answer.
        ReadRole::Other => Decision::Serve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn state(raft: u64) -> IndexState {
        IndexState {
            cluster_id: "0f5b2a51-33e4-4c8c-9d50-3f1f2e6ad0e1".into(),
            raft_index: raft,
            wal_index: 7,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_index_reads_back_as_written() {
        // Why: clients hand the value back verbatim; any drift loses read-after-write.
        let s = state(u64::MAX - 1);

        let encoded = encode(&s);

        assert_eq!(decode(&encoded).unwrap(), s);
        assert_eq!(decode(encoded.trim_end_matches('=')).unwrap(), s);
    }

    #[test]
    fn malformed_indexes_are_refused_with_the_reason() {
        // Why: a header is outside input; it must never panic or be half-read.
        let good = B64.decode(encode(&state(5))).unwrap();
        let mut other_version = good.clone();
        other_version[0] = 2;
        let truncated = &good[..good.len() - 1];
        let mut bad_len = good.clone();
        bad_len[1] = 200;

        let cases = [
            ("", "empty".to_owned()),
            ("!!!", "base64".to_owned()),
            (&B64.encode(&other_version), "version 2".to_owned()),
            (&B64.encode(truncated), "length".to_owned()),
            (&B64.encode(&bad_len), "length".to_owned()),
            (&"A".repeat(MAX_VALUE_LEN + 4), "longer".to_owned()),
        ];

        for (value, reason) in cases {
            let err = decode(value).unwrap_err();
            assert!(err.contains(&reason), "{value:?}: {err}");
        }
    }

    #[test]
    fn headers_parse_into_a_requirement_or_a_400() {
        // Why: the three headers decide where a request goes; unknown values are mistakes.
        let a = encode(&state(3));
        let b = encode(&state(9));

        let req = Requirement::from_headers(&headers(&[
            (INDEX_HEADER, &a),
            (INDEX_HEADER, &b),
            (INCONSISTENT_HEADER, "await-state"),
        ]))
        .unwrap();
        let forward =
            Requirement::from_headers(&headers(&[(FORWARD_HEADER, "active-node")])).unwrap();
        let bad = [
            headers(&[(INDEX_HEADER, "not an index")]),
            headers(&[(INCONSISTENT_HEADER, "sometimes")]),
            headers(&[(FORWARD_HEADER, "standby")]),
            headers(&[(INCONSISTENT_HEADER, "fail"), (INCONSISTENT_HEADER, "fail")]),
        ];

        assert_eq!(req.states, vec![state(3), state(9)]);
        assert_eq!(req.when, WhenInconsistent::AwaitState);
        assert!(forward.force_active && forward.states.is_empty());
        for h in bad {
            let err = Requirement::from_headers(&h).unwrap_err();
            assert!(err.0.contains("header"), "{}", err.0);
        }
    }

    #[test]
    fn a_standby_serves_what_it_holds_and_otherwise_follows_the_mode() {
        // Why: this table is the consistency contract of standby reads.
        let standby = ReadRole::StandbyReads { state: state(10) };
        let need = |raft: u64, when| Requirement {
            states: vec![state(raft)],
            when,
            force_active: false,
        };
        let foreign = Requirement {
            states: vec![IndexState {
                cluster_id: "other".into(),
                ..state(1)
            }],
            when: WhenInconsistent::AwaitState,
            force_active: false,
        };
        let forced = Requirement {
            force_active: true,
            ..Requirement::default()
        };
        use WhenInconsistent::*;

        let cases = [
            (Requirement::default(), Decision::Serve),
            (need(10, Fail), Decision::Serve),
            (need(11, Fail), Decision::NotPresent),
            (need(11, ForwardActiveNode), Decision::Forward),
            (need(11, AwaitState), Decision::Await(11)),
            (foreign, Decision::NotPresent),
            (forced, Decision::Forward),
        ];

        for (req, want) in cases {
            assert_eq!(decide(&standby, &req), want, "{req:?}");
        }
    }

    #[test]
    fn the_active_node_serves_every_index() {
        // Why: the active node committed everything a client can hold; it never answers 412.
        let active = ReadRole::Active { state: state(10) };
        let need = |raft| Requirement {
            states: vec![state(raft)],
            ..Requirement::default()
        };

        assert_eq!(decide(&active, &need(10)), Decision::Serve);
        assert_eq!(decide(&active, &need(12)), Decision::ServeAfterApplied(12));
        assert_eq!(
            decide(&ReadRole::StandbyForwarding, &need(1)),
            Decision::Forward
        );
    }

    #[test]
    fn a_performance_secondary_waits_only_for_its_primarys_wal() {
        // Why: a client that wrote through the secondary holds the primary's index; the
        // secondary serves it once that WAL index streamed in, and never waits on its own.
        let own = "11111111-33e4-4c8c-9d50-3f1f2e6ad0e1";
        let primary = IndexState {
            wal_index: 40,
            ..state(9)
        };
        let ours = IndexState {
            cluster_id: own.into(),
            raft_index: 1_000_000,
            wal_index: 1_000_000,
        };
        let req = |when| Requirement {
            states: vec![primary.clone(), ours.clone()],
            when,
            force_active: false,
        };

        assert_eq!(
            decide_remote(own, 40, &req(WhenInconsistent::Fail)),
            Decision::Serve
        );
        assert_eq!(
            decide_remote(own, 39, &req(WhenInconsistent::Fail)),
            Decision::NotPresent
        );
        assert_eq!(
            decide_remote(own, 39, &req(WhenInconsistent::AwaitState)),
            Decision::AwaitRemote(40)
        );
    }
}
