//! The JSON shape of audit lines (spec §3.5), rendered per device.
//!
//! An event is rendered once per device because devices differ in salt, `log_raw` and
//! `hmac_accessor`; the event itself never holds hashed values, and the rendered line never
//! holds a secret in clear unless the operator chose `log_raw`.

use serde_json::{Map, Value, json};
use strongroom_api::{Auth, WrapInfo};

use super::salt::Hasher;
use crate::mounts::MountEntry;
use crate::policy::AclDecision;
use crate::token::{TokenEntry, TokenType};
use crate::{CoreError, Operation, Request, Response};

/// One thing to record: a request before it is served, or its outcome.
pub(super) struct Event<'a> {
    pub req: &'a Request,
    pub token: Option<&'a TokenEntry>,
    pub mount: Option<&'a MountEntry>,
    /// Present on request entries: the ACL verdict.
    pub decision: Option<&'a AclDecision>,
    /// Present on response entries.
    pub result: Option<&'a Result<Response, CoreError>>,
    /// RFC 3339 with nanoseconds.
    pub time: &'a str,
}

/// Where a request landed, as audit reports it.
struct MountInfo {
    point: String,
    kind: String,
    accessor: String,
    class: &'static str,
}

impl MountInfo {
    fn of(mount: Option<&MountEntry>, path: &str) -> MountInfo {
        match mount {
            Some(m) => MountInfo {
                point: m.path.clone(),
                kind: m.engine.clone(),
                accessor: m.accessor.clone(),
                class: if m.path.starts_with("auth/") {
                    "auth"
                } else {
                    "secret"
                },
            },
            None if path == "auth/token" || path.starts_with("auth/token/") => MountInfo {
                point: "auth/token/".into(),
                kind: "token".into(),
                accessor: String::new(),
                class: "auth",
            },
            None if path == "sys" || path.starts_with("sys/") => MountInfo {
                point: "sys/".into(),
                kind: "system".into(),
                accessor: String::new(),
                class: "",
            },
            None => MountInfo {
                point: String::new(),
                kind: String::new(),
                accessor: String::new(),
                class: "",
            },
        }
    }
}

/// Vault's audit name of an operation.
pub(super) fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Read => "read",
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Patch => "patch",
        Operation::Delete => "delete",
        Operation::List => "list",
    }
}

/// The full line for `ev` as `h` renders it.
pub(super) fn render(ev: &Event<'_>, h: &Hasher<'_>, elide_list_responses: bool) -> Value {
    let mount = MountInfo::of(ev.mount, &ev.req.path);
    let (req_keys, resp_keys) = ev
        .mount
        .map(|m| {
            (
                m.config.audit_non_hmac_request_keys.as_slice(),
                m.config.audit_non_hmac_response_keys.as_slice(),
            )
        })
        .unwrap_or((&[], &[]));
    let mut line = Map::new();
    line.insert("time".into(), json!(ev.time));
    line.insert(
        "type".into(),
        json!(if ev.result.is_some() {
            "response"
        } else {
            "request"
        }),
    );
    line.insert("auth".into(), caller_auth(ev, h));
    line.insert("request".into(), request(ev, h, &mount, req_keys));
    if let Some(result) = ev.result {
        match result {
            Ok(resp) => {
                line.insert(
                    "response".into(),
                    response(
                        resp,
                        ev.req.operation,
                        h,
                        &mount,
                        resp_keys,
                        elide_list_responses,
                    ),
                );
            }
            Err(e) => {
                line.insert("error".into(), json!(e.to_string()));
            }
        }
    }
    Value::Object(line)
}

/// The `auth` section: who made the request.
fn caller_auth(ev: &Event<'_>, h: &Hasher<'_>) -> Value {
    let mut out = Map::new();
    let client_token = ev.req.token.as_deref().map(str::trim).unwrap_or("");
    out.insert("client_token".into(), json!(h.secret(client_token)));
    if let Some(t) = ev.token {
        let mut policies = t.policies.clone();
        policies.sort();
        policies.dedup();
        out.insert("accessor".into(), json!(h.accessor(&t.accessor)));
        out.insert("display_name".into(), json!(t.display_name));
        out.insert("policies".into(), json!(policies));
        out.insert("token_policies".into(), json!(policies));
        out.insert(
            "metadata".into(),
            if t.meta.is_empty() {
                Value::Null
            } else {
                json!(t.meta)
            },
        );
        out.insert("entity_id".into(), json!(t.entity_id));
        out.insert(
            "token_type".into(),
            json!(match t.token_type {
                TokenType::Service => "service",
                TokenType::Batch => "batch",
            }),
        );
        out.insert("token_ttl".into(), json!(t.ttl));
        out.insert(
            "token_issue_time".into(),
            json!(unix_rfc3339(t.creation_time)),
        );
    }
    if let Some(d) = ev.decision {
        let granting: Vec<Value> = d
            .granting_policies
            .iter()
            .map(|p| json!({"name": p, "type": ""}))
            .collect();
        out.insert(
            "policy_results".into(),
            json!({"allowed": d.allowed, "granting_policies": granting}),
        );
    }
    Value::Object(out)
}

/// The `request` section.
fn request(ev: &Event<'_>, h: &Hasher<'_>, mount: &MountInfo, clear_keys: &[String]) -> Value {
    let req = ev.req;
    let client_token = req.token.as_deref().map(str::trim).unwrap_or("");
    let mut out = Map::new();
    out.insert("id".into(), json!(req.id));
    out.insert("operation".into(), json!(operation_name(req.operation)));
    out.insert("mount_point".into(), json!(mount.point));
    out.insert("mount_type".into(), json!(mount.kind));
    out.insert("mount_accessor".into(), json!(mount.accessor));
    out.insert("mount_class".into(), json!(mount.class));
    out.insert("client_token".into(), json!(h.secret(client_token)));
    out.insert(
        "client_token_accessor".into(),
        json!(h.accessor(ev.token.map(|t| t.accessor.as_str()).unwrap_or(""))),
    );
    out.insert("namespace".into(), json!({"id": "root"}));
    // A token in the path (refused, but audited first) is hashed like any other token.
    let path = match crate::routing::token_in_path(&req.path) {
        Some((form, token)) => format!("{form}{}", h.secret(token)),
        None => req.path.clone(),
    };
    out.insert("path".into(), json!(path));
    if !req.data.is_empty() {
        out.insert("data".into(), Value::Object(h.map(&req.data, clear_keys)));
    }
    if let Some(addr) = req.client_addr {
        out.insert("remote_address".into(), json!(addr.ip().to_string()));
        out.insert("remote_port".into(), json!(addr.port()));
    }
    if let Some(ttl) = req.wrap_ttl {
        out.insert("wrap_ttl".into(), json!(ttl.as_secs()));
    }
    Value::Object(out)
}

/// The `response` section of a successful request.
fn response(
    resp: &Response,
    op: Operation,
    h: &Hasher<'_>,
    mount: &MountInfo,
    clear_keys: &[String],
    elide: bool,
) -> Value {
    let mut out = Map::new();
    out.insert("mount_point".into(), json!(mount.point));
    out.insert("mount_type".into(), json!(mount.kind));
    out.insert("mount_accessor".into(), json!(mount.accessor));
    // An unwrap's answer is the wrapped one; audit its parts like any answer.
    let shown = resp.unwrapped.as_deref().unwrap_or(resp);
    if let Some(mut data) = shown.data.clone() {
        if elide && op == Operation::List {
            elide_list(&mut data);
        }
        out.insert("data".into(), Value::Object(h.map(&data, clear_keys)));
    }
    if let Some(auth) = &shown.auth {
        out.insert("auth".into(), issued_auth(auth, h));
    }
    if let Some(w) = &resp.wrap_info {
        out.insert("wrap_info".into(), wrap_info(w, h));
    }
    if let Some(lease) = &resp.lease
        && !lease.lease_id.is_empty()
    {
        out.insert("secret".into(), json!({"lease_id": lease.lease_id}));
    }
    if !resp.warnings.is_empty() {
        out.insert("warnings".into(), json!(resp.warnings));
    }
    Value::Object(out)
}

/// A token handed out by the response (login, token create), with its secret parts hashed.
fn issued_auth(a: &Auth, h: &Hasher<'_>) -> Value {
    json!({
        "client_token": h.secret(&a.client_token),
        "accessor": h.accessor(&a.accessor),
        "policies": a.policies,
        "token_policies": a.token_policies,
        "metadata": a.metadata,
        "entity_id": a.entity_id,
        "token_type": a.token_type,
        "token_ttl": a.lease_duration,
        "num_uses": a.num_uses,
        "orphan": a.orphan,
        "renewable": a.renewable,
    })
}

/// A wrapping answer: the wrapping token is as secret as any other token.
fn wrap_info(w: &WrapInfo, h: &Hasher<'_>) -> Value {
    let mut out = json!({
        "token": h.secret(&w.token),
        "accessor": h.accessor(&w.accessor),
        "ttl": w.ttl,
        "creation_time": w.creation_time,
        "creation_path": w.creation_path,
    });
    if !w.wrapped_accessor.is_empty()
        && let Value::Object(o) = &mut out
    {
        o.insert(
            "wrapped_accessor".into(),
            json!(h.accessor(&w.wrapped_accessor)),
        );
    }
    out
}

/// `elide_list_responses`: list answers keep only their sizes.
fn elide_list(data: &mut Map<String, Value>) {
    if let Some(Value::Array(keys)) = data.get("keys") {
        let n = keys.len();
        data.insert("keys".into(), json!(n));
    }
    if let Some(Value::Object(info)) = data.get("key_info") {
        let n = info.len();
        data.insert("key_info".into(), json!(n));
    }
}

fn unix_rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::salt::Salt;
    use super::*;

    #[test]
    fn response_hashes_tokens_data_and_elides_lists() {
        // Why: issued tokens and data values are the secrets audit must never show in clear.
        let salt = Salt::generate().unwrap();
        let h = Hasher {
            salt: Some(&salt),
            hmac_accessor: true,
        };
        let mut req = Request::new(Operation::List, "secret/");
        req.token = Some("hvs.caller".into());
        let resp = Response {
            data: Some(json!({"keys": ["a", "b"]}).as_object().cloned().unwrap()),
            auth: Some(Auth {
                client_token: "hvs.new".into(),
                accessor: "acc".into(),
                ..Auth::default()
            }),
            ..Response::default()
        };
        let result = Ok(resp);
        let ev = Event {
            req: &req,
            token: None,
            mount: None,
            decision: None,
            result: Some(&result),
            time: "now",
        };
        let line = render(&ev, &h, true);
        assert_eq!(line["type"], "response");
        assert_eq!(line["request"]["operation"], "list");
        assert_eq!(
            line["request"]["client_token"],
            json!(salt.hash("hvs.caller"))
        );
        assert_eq!(line["response"]["data"]["keys"], json!(2));
        assert_eq!(
            line["response"]["auth"]["client_token"],
            json!(salt.hash("hvs.new"))
        );
        assert_eq!(
            line["response"]["auth"]["accessor"],
            json!(salt.hash("acc"))
        );
        let text = line.to_string();
        assert!(!text.contains("hvs.new") && !text.contains("hvs.caller"));
    }

    #[test]
    fn errors_are_top_level() {
        // Why: operators search failed requests by the top-level `error` field.
        let salt = Salt::generate().unwrap();
        let h = Hasher {
            salt: Some(&salt),
            hmac_accessor: true,
        };
        let req = Request::new(Operation::Read, "sys/mounts");
        let result = Err(CoreError::PermissionDenied);
        let ev = Event {
            req: &req,
            token: None,
            mount: None,
            decision: None,
            result: Some(&result),
            time: "now",
        };
        let line = render(&ev, &h, false);
        assert_eq!(line["error"], "permission denied");
        assert_eq!(line["request"]["mount_type"], "system");
        assert!(line.get("response").is_none());
    }
}
