//! The door: the one path every request takes, logical or raw.
//!
//! The order: seal gate, replication-mode gate, route, token lookup, bound CIDRs, ACL (with
//! sudo and wrapping bounds), request audit (fail closed), token use counting, handler,
//! token issue on login, wrapping, response audit. Keeping the order in one function makes
//! the security argument readable: nothing reaches a handler without passing the checks
//! above it. Raw endpoints (seal, step-down, metrics, snapshots) come through here too and
//! differ only in how `http` writes their answer; the only paths that do not are the
//! node-state paths of the route table, answered before the seal gate as Vault does.
//! A standby serving reads runs them through here too, unchanged (`ha/reads.rs`).

use std::time::Duration;

use crate::policy::AclDecision;
use crate::routing::{self, Route};
use crate::token::{IssueRequest, TokenEntry};
use crate::{Core, CoreError, Operation, Request, Response};

/// Longest wrapping TTL accepted from a client.
const MAX_WRAP_TTL: Duration = Duration::from_secs(768 * 3600);

/// Runs one request through the door.
pub(crate) async fn handle(core: &Core, mut req: Request) -> Result<Response, CoreError> {
    // A snapshot restore replaces the whole keyspace, so it holds the request gate alone;
    // every other request holds it shared. Only a caller the checks admit may wait for the
    // exclusive gate: anyone else could stall every request just by asking.
    let exclusive = replaces_keyspace(&req) && preflight(core, &req).await.is_ok();
    let _gate = if exclusive {
        GateGuard::Exclusive(core.gates.request.write().await)
    } else {
        GateGuard::Shared(core.gates.request.read().await)
    };
    // A standby that serves reads admits the reads `http` hands it as standby-local (see
    // `ha/reads.rs`); they pass every check below like any other request.
    let standby_local = crate::ha::tracking::standby_local();
    let door_open = core.serving() || (standby_local && core.serves_standby_reads());
    if !door_open {
        // Sealing a sealed node changes nothing and has nothing to authorize (Vault answers
        // 204 too); everything else waits until the unseal has finished loading.
        if req.path == "sys/seal" && writes(req.operation) && core.barrier.sealed() {
            return Ok(Response::no_content());
        }
        return Err(CoreError::Sealed);
    }
    // Client requests hold the client gate across the DR check and their whole handling, so
    // a demote that closes the gate waits for every write already admitted: nothing is
    // acknowledged after the demote returns. Replication paths (demote itself) skip it.
    let _client = if req.path.starts_with("sys/replication/") {
        None
    } else {
        Some(core.gates.client.read().await)
    };
    // A DR secondary serves only status and DR operation paths.
    if let Some(resp) = core.dr_gate(&req).await? {
        return Ok(resp);
    }
    let route = routing::resolve(core, &req.path).await;
    let checked = check(core, &mut req, route.as_ref()).await;
    let (token, decision) = match &checked {
        Ok(admitted) => (admitted.token.clone(), Some(admitted.decision.clone())),
        Err(_) => (None, None),
    };
    let mount = route.as_ref().and_then(Route::mount).cloned();
    // A performance secondary hands changes of shared state to its primary, as this caller.
    if core.is_perf_secondary()
        && let Ok(Admitted { token: Some(t), .. }) = &checked
    {
        crate::ha::tracking::note_identity(crate::replication::ForwardedIdentity::of(
            t,
            req.wrap_ttl,
        ));
    }
    // A read a standby cannot finish without writing goes to the active node before it is
    // audited here: spending a token use and wrapping the answer (which mints a token) both
    // write. Other writes are caught when attempted (`ha/tracking.rs`), after this audit.
    if standby_local
        && let Ok(admitted) = &checked
        && (req.wrap_ttl.is_some() || admitted.token.as_ref().is_some_and(spends_uses))
    {
        crate::ha::tracking::needs_active();
        return Err(CoreError::Unavailable(
            crate::ha::tracking::STANDBY_WRITE_REFUSED.into(),
        ));
    }

    // Fail closed: a request that cannot be audited is not served, and spends no token use.
    let trail = core
        .audit_request(&req, token.as_ref(), mount.as_ref(), decision.as_ref())
        .await?;
    let result = match checked {
        Err(e) => Err(e),
        Ok(admitted) => match spend_use(core, &req, &admitted).await {
            Err(e) => Err(e),
            Ok(()) => match route {
                None => Err(CoreError::UnsupportedPath(req.path.clone())),
                Some(route) => {
                    serve(
                        core,
                        &req,
                        route,
                        admitted.token.as_ref(),
                        &admitted.decision,
                    )
                    .await
                }
            },
        },
    };
    core.audit_response(&trail, &req, token.as_ref(), mount.as_ref(), &result)?;
    result
}

/// Whether `req` replaces the whole keyspace (snapshot restore).
fn replaces_keyspace(req: &Request) -> bool {
    matches!(
        req.path.as_str(),
        "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
    ) && writes(req.operation)
}

/// PUT or POST: the verbs that seal, step down or restore (DELETE and PATCH do not).
pub(crate) fn writes(op: Operation) -> bool {
    matches!(op, Operation::Update | Operation::Create)
}

/// The request gate, held shared or exclusively for the whole request.
enum GateGuard<'a> {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'a, ()>),
}

/// What the checks admitted: the caller's token (absent on unauthenticated paths without
/// one) and the ACL verdict.
struct Admitted {
    token: Option<TokenEntry>,
    decision: AclDecision,
    /// Whether the token was required, so this request spends one of its uses.
    spends_use: bool,
}

/// Runs the checks of the door without auditing or spending a use: `http` asks this before
/// reading a snapshot-sized body, to decide the body limit. The request itself then passes
/// the whole door.
pub(crate) async fn preflight(core: &Core, req: &Request) -> Result<(), CoreError> {
    let _gate = core.gates.request.read().await;
    if !core.serving() {
        return Err(CoreError::Sealed);
    }
    core.dr_gate(req).await?;
    let route = routing::resolve(core, &req.path).await;
    let mut req = req.clone();
    check(core, &mut req, route.as_ref()).await.map(|_| ())
}

/// Token lookup, bound CIDRs, ACL with sudo and wrapping bounds.
async fn check(
    core: &Core,
    req: &mut Request,
    route: Option<&Route>,
) -> Result<Admitted, CoreError> {
    let unauth = route.is_some_and(|r| routing::unauthenticated(r, &req.path, req.operation));
    // A request a performance secondary forwarded carries its caller instead of a token
    // this cluster knows (`replication/forwarding.rs`); its ACL is still checked below.
    let token = match (
        crate::replication::forwarded_identity(),
        req.token.as_deref(),
    ) {
        (Some(identity), _) => Some(identity.token_entry()),
        (None, Some(t)) if !t.trim().is_empty() => core.lookup_token(t.trim()).await?,
        _ => None,
    };
    let outside_cidrs =
        |t: &TokenEntry| !t.bound_cidrs.is_empty() && !cidr_allows(&t.bound_cidrs, req.client_addr);
    if unauth {
        // A token presented from outside its bound CIDRs is not used, even where none is
        // needed: the request goes on as anonymous.
        let token = token.filter(|t| !outside_cidrs(t));
        return Ok(Admitted {
            token,
            decision: AclDecision {
                allowed: true,
                ..AclDecision::default()
            },
            spends_use: false,
        });
    }
    // Vault answers 403, not 404, to unauthenticated requests for unknown paths.
    let token = token.ok_or(CoreError::PermissionDenied)?;
    if outside_cidrs(&token) {
        return Err(CoreError::PermissionDenied);
    }
    let acl = core.acl_for(&token.policies).await?;
    let op = effective_operation(core, req, route).await?;
    let decision = acl.check(op, &req.path, &req.data);
    if !decision.allowed || (routing::requires_sudo(&req.path, req.operation) && !decision.sudo) {
        return Err(CoreError::PermissionDenied);
    }
    // Policies may force wrapping or bound its TTL. A request a performance secondary
    // forwarded is wrapped there, by the secondary's door, so not here as well.
    if crate::replication::forwarded_identity().is_some() {
        return Ok(Admitted {
            token: Some(token),
            decision,
            spends_use: true,
        });
    }
    match (
        req.wrap_ttl,
        decision.min_wrapping_ttl,
        decision.max_wrapping_ttl,
    ) {
        (None, Some(min), _) => req.wrap_ttl = Some(min),
        (Some(ttl), Some(min), _) if ttl < min => return Err(CoreError::PermissionDenied),
        (Some(ttl), _, Some(max)) if ttl > max => return Err(CoreError::PermissionDenied),
        _ => {}
    }
    Ok(Admitted {
        token: Some(token),
        decision,
        spends_use: true,
    })
}

/// Whether using `token` writes (a service token with a use limit).
fn spends_uses(token: &TokenEntry) -> bool {
    token.num_uses > 0 && token.token_type != crate::token::TokenType::Batch
}

/// Counts one use of a use-limited token, after the request was audited.
async fn spend_use(core: &Core, req: &Request, admitted: &Admitted) -> Result<(), CoreError> {
    match (&admitted.token, req.token.as_deref()) {
        (Some(entry), Some(raw)) if admitted.spends_use => {
            core.consume_token_use(raw.trim(), entry).await
        }
        _ => Ok(()),
    }
}

/// Create versus update: decided by the backend's existence check where it has one.
async fn effective_operation(
    core: &Core,
    req: &Request,
    route: Option<&Route>,
) -> Result<Operation, CoreError> {
    if req.operation != Operation::Update {
        return Ok(req.operation);
    }
    if let Some(Route::Mount(mount, rest)) = route
        && crate::backend::exists(core, mount, rest).await? == Some(false)
    {
        return Ok(Operation::Create);
    }
    Ok(Operation::Update)
}

/// Runs the handler and the post-processing steps.
async fn serve(
    core: &Core,
    req: &Request,
    route: Route,
    token: Option<&TokenEntry>,
    decision: &AclDecision,
) -> Result<Response, CoreError> {
    let mut resp = match &route {
        Route::Sys => crate::sys::route(core, req, token, decision).await?,
        Route::Token(rest) => crate::token::route(core, req, token, rest).await?,
        Route::Mount(mount, rest) => {
            crate::backend::dispatch(core, mount, req, rest, token).await?
        }
    };
    if let Some(login) = resp.login.take() {
        // Auth methods never mint root or wrapping tokens, whatever their configuration says.
        if login
            .policies
            .iter()
            .any(|p| p == "root" || p == "response-wrapping")
        {
            return Err(CoreError::InvalidRequest(
                "auth methods cannot create root tokens".into(),
            ));
        }
        let mount = route.mount();
        let mount_default = mount
            .map(|m| m.config.default_lease_ttl)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64));
        let mount_max = mount
            .map(|m| m.config.max_lease_ttl)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64));
        let max = mount_max
            .unwrap_or(core.config.max_ttl())
            .min(core.config.max_ttl());
        let max = login.max_ttl.map(|m| m.min(max)).unwrap_or(max);
        let ttl = login
            .ttl
            .or(mount_default)
            .unwrap_or(core.config.default_ttl())
            .min(max);
        let token_type =
            login
                .token_type
                .unwrap_or(match mount.map(|m| m.config.token_type.as_str()) {
                    Some("batch") | Some("default-batch") => crate::token::TokenType::Batch,
                    _ => crate::token::TokenType::Service,
                });
        let issued = core
            .issue_token(IssueRequest {
                policies: login.policies,
                ttl: Some(ttl),
                max_ttl: Some(max),
                explicit_max_ttl: login.explicit_max_ttl,
                period: login.period,
                num_uses: login.num_uses,
                renewable: login.renewable,
                display_name: login.display_name,
                meta: login.metadata,
                token_type,
                parent: None,
                path: req.path.clone(),
                no_default_policy: login.no_default_policy,
                bound_cidrs: login.bound_cidrs,
                role: None,
                id: None,
            })
            .await?;
        resp.auth = Some(issued.to_auth());
    }
    if resp.mount_type.is_empty() {
        resp.mount_type = match &route {
            Route::Sys => "system".into(),
            Route::Token(_) => "token".into(),
            Route::Mount(m, _) => m.engine.clone(),
        };
    }
    // Metrics and snapshots answer bytes, which no envelope can hold: a request (or a policy)
    // that asks for wrapping is refused rather than answered unwrapped.
    if req.wrap_ttl.is_some() && resp.raw.is_some() {
        return Err(CoreError::InvalidRequest(
            "this endpoint answers raw bytes, which cannot be response-wrapped: send it without X-Vault-Wrap-TTL, with a token whose policies do not require wrapping".into(),
        ));
    }
    if let Some(ttl) = req.wrap_ttl
        && !resp.is_empty()
        && resp.wrap_info.is_none()
        && resp.raw_body.is_none()
        && resp.unwrapped.is_none()
    {
        if ttl.is_zero() || ttl > MAX_WRAP_TTL {
            return Err(CoreError::InvalidRequest(format!(
                "wrapping TTL must be between 1s and {}h",
                MAX_WRAP_TTL.as_secs() / 3600
            )));
        }
        resp = core.wrap_response(req, resp, ttl).await?;
    }
    let _ = decision;
    Ok(resp)
}

/// Whether the client address falls inside one of the token's bound CIDR blocks.
fn cidr_allows(cidrs: &[String], addr: Option<std::net::SocketAddr>) -> bool {
    let Some(addr) = addr else { return false };
    cidrs
        .iter()
        .any(|c| crate::util::cidr_contains(c, addr.ip()))
}
