//! The body of `sys/storage/raft/join`, read into what core's join needs.

use serde::Deserialize;
use strongroom_core::ha::LeaderTls;
use zeroize::Zeroizing;

use crate::parse::{self, BadRequest};

/// Vault's join parameters; `auto_join` (cloud discovery) is refused.
#[derive(Deserialize, Default)]
#[serde(default)]
struct JoinBody {
    leader_api_addr: String,
    retry: bool,
    leader_ca_cert: String,
    leader_client_cert: String,
    leader_client_key: Zeroizing<String>,
    leader_tls_servername: String,
    auto_join: String,
    auto_join_scheme: String,
    auto_join_port: u16,
    non_voter: bool,
}

fn some(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

/// What a join request asks for.
pub(crate) struct Join {
    /// The leaders to try, in order, with how to reach each.
    pub leaders: Vec<(String, LeaderTls)>,
    pub retry: bool,
    pub non_voter: bool,
}

/// Reads and checks the body.
pub(crate) fn from_body(body: &[u8]) -> Result<Join, BadRequest> {
    let b: JoinBody = parse::typed_body(body)?;
    if !b.auto_join.is_empty() {
        return Err(BadRequest::new(
            "auto_join (cloud auto-discovery) is not supported by Strongroom: give leader_api_addr",
        ));
    }
    let addr = b.leader_api_addr.trim();
    if addr.is_empty() {
        return Err(BadRequest::new("leader_api_addr is required"));
    }
    let tls = LeaderTls {
        ca_cert_pem: some(&b.leader_ca_cert),
        client_cert_pem: some(&b.leader_client_cert),
        client_key_pem: some(&b.leader_client_key).map(Zeroizing::new),
        tls_servername: some(&b.leader_tls_servername),
    };
    Ok(Join {
        leaders: vec![(addr.to_owned(), tls)],
        retry: b.retry,
        non_voter: b.non_voter,
    })
}
