//! The body of `sys/storage/raft/join`, read into what core's join needs.

use strongroom_api::RaftJoinRequest;
use strongroom_core::ha::LeaderTls;
use zeroize::Zeroizing;

use crate::parse::{self, BadRequest};

/// What a join request asks for.
pub(crate) struct Join {
    /// The leaders to try, in order, with how to reach each.
    pub leaders: Vec<(String, LeaderTls)>,
    pub retry: bool,
    pub non_voter: bool,
}

fn some(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

/// Reads the body (Vault's fields, shared with the CLI through `api`) and checks it.
pub(crate) fn from_body(body: &[u8]) -> Result<Join, BadRequest> {
    let b: RaftJoinRequest = parse::typed_body(body)?;
    b.validate().map_err(BadRequest::new)?;
    let tls = LeaderTls {
        ca_cert_pem: some(&b.leader_ca_cert),
        client_cert_pem: some(&b.leader_client_cert),
        client_key_pem: some(b.leader_client_key.expose()).map(Zeroizing::new),
        tls_servername: some(&b.leader_tls_servername),
    };
    Ok(Join {
        leaders: vec![(b.leader_api_addr.trim().to_owned(), tls)],
        retry: b.retry,
        non_voter: b.non_voter,
    })
}
