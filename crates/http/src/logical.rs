//! Logical endpoints: everything core routes, answered in Vault's standard envelope.
//!
//! This is the translation between HTTP and `strongroom_core::Request`/`Response`: verbs become
//! operations, query strings and bodies become request data, and core's typed response becomes
//! the JSON envelope (spec §1.1), including the legacy top-level copy of `data` that hvac reads
//! for a fixed set of sys routes.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{Map, Value};
use strongroom_api::LogicalResponse;
use strongroom_core::{Core, Operation, Request, Response};

use strongroom_core::CoreError;

use crate::call::Call;
use crate::parse::{self, BadRequest};
use crate::reply;

/// Serves a logical request.
pub(crate) async fn handle(core: &Arc<Core>, call: &Call) -> axum::response::Response {
    let req = match build_request(call) {
        Ok(Some(req)) => req,
        Ok(None) => return reply::method_not_allowed(),
        Err(e) => return e.into(),
    };
    let request_id = req.id.clone();
    match core.handle(req).await {
        Ok(resp) if resp.is_empty() => reply::no_content(),
        // Metrics and snapshots answer their own bytes, outside the envelope.
        Ok(Response { raw: Some(raw), .. }) => {
            reply::with_body(StatusCode::OK, raw.content_type, raw.bytes)
        }
        Ok(resp) => reply::json(StatusCode::OK, &envelope(&call.path, request_id, resp)),
        // KV v2 answers a deleted or destroyed version with 404 *and* the full envelope, so
        // clients can read its metadata.
        Err(CoreError::NotFoundWith(resp)) => reply::json(
            StatusCode::NOT_FOUND,
            &envelope(&call.path, request_id, *resp),
        ),
        Err(e) => reply::core_error(&e),
    }
}

/// The core request for `call`; `None` when the verb has no logical meaning.
pub(crate) fn build_request(call: &Call) -> Result<Option<Request>, BadRequest> {
    let list_flag = match parse::query_value(&call.query, "list") {
        None => false,
        Some(v) => parse::parse_bool(v).ok_or_else(|| {
            BadRequest::new(format!("invalid value {v:?} for list: expected a boolean"))
        })?,
    };
    let operation = if call.is_list_verb() {
        Operation::List
    } else {
        match call.method {
            Method::GET if list_flag => Operation::List,
            Method::GET => Operation::Read,
            Method::PUT | Method::POST => Operation::Update,
            Method::DELETE => Operation::Delete,
            Method::PATCH => Operation::Patch,
            _ => return Ok(None),
        }
    };
    // A snapshot upload is the one body that is not JSON: core gets it as it came.
    let raw_body = (operation == Operation::Update && crate::raw::is_snapshot_upload(&call.path))
        .then(|| call.body.clone());
    let data = match operation {
        _ if raw_body.is_some() => Map::new(),
        Operation::Read | Operation::List => parse::query_data(&call.query, &["list"]),
        Operation::Delete if call.body.iter().all(u8::is_ascii_whitespace) => {
            parse::query_data(&call.query, &[])
        }
        _ => parse::body_data(&call.headers, &call.body)?,
    };
    Ok(Some(Request {
        id: uuid::Uuid::new_v4().to_string(),
        operation,
        path: call.path.clone(),
        data,
        token: call.token()?,
        client_addr: call.peer,
        wrap_ttl: parse::wrap_ttl(&call.headers)?,
        raw_body,
    }))
}

/// Core's response in Vault's envelope, with `data` copied to the top level where Vault does.
/// A finished body from core is sent as it is; an unwrap sends the wrapped answer's envelope
/// under this request's id, exactly as it would have gone out unwrapped.
pub(crate) fn envelope(path: &str, request_id: String, resp: Response) -> Value {
    if let Some(raw) = resp.raw_body {
        return raw;
    }
    if let Some(inner) = resp.unwrapped {
        return unwrapped_envelope(request_id, *inner);
    }
    let lease = resp.lease.unwrap_or_default();
    let inject = injects_data(path);
    let data = resp.data;
    let out = LogicalResponse {
        request_id,
        lease_id: lease.lease_id,
        renewable: lease.renewable,
        lease_duration: lease.duration_secs,
        data: data.clone(),
        wrap_info: resp.wrap_info,
        warnings: (!resp.warnings.is_empty()).then_some(resp.warnings),
        auth: resp.auth,
        mount_type: resp.mount_type,
    };
    let mut value = serde_json::to_value(out).unwrap_or_else(|_| Value::Object(Map::new()));
    if let (Value::Object(obj), true) = (&mut value, inject) {
        for (k, v) in data.into_iter().flatten() {
            // Envelope fields win: a data key named `request_id` must not forge the envelope.
            obj.entry(k).or_insert(v);
        }
    }
    value
}

/// The envelope of an unwrapped answer: no top-level `data` copy (the answer is delivered at
/// `sys/wrapping/unwrap`), its own mount type, and never a `wrap_info` of its own.
fn unwrapped_envelope(request_id: String, inner: Response) -> Value {
    let inner = Response {
        wrap_info: None,
        unwrapped: None,
        raw_body: None,
        ..inner
    };
    envelope("sys/wrapping/unwrap", request_id, inner)
}

/// Whether `path` is one of the sys routes whose `data` Vault also copies to the top level.
fn injects_data(path: &str) -> bool {
    const EXACT: &[&str] = &[
        "sys/audit",
        "sys/auth",
        "sys/config/cors",
        "sys/config/auditing/request-headers",
        "sys/capabilities",
        "sys/capabilities-accessor",
        "sys/capabilities-self",
        "sys/key-status",
        "sys/mounts",
        "sys/policy",
        "sys/rekey/backup",
        "sys/rekey/recovery-key-backup",
        "sys/remount",
        "sys/rotate",
        "sys/wrapping/wrap",
    ];
    const PREFIX: &[&str] = &[
        "sys/audit/",
        "sys/audit-hash/",
        "sys/auth/",
        "sys/config/auditing/request-headers/",
        "sys/mounts/",
        "sys/policy/",
    ];
    let path = path.trim_end_matches('/');
    EXACT.contains(&path) || PREFIX.iter().any(|p| path.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;
    use serde_json::json;

    fn call(method: &str, path: &str, query: &str, body: &str) -> Call {
        Call {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            uri: Default::default(),
            version: Default::default(),
            headers: HeaderMap::new(),
            query: parse::query_pairs(Some(query)),
            path: path.into(),
            body: Bytes::from(body.to_owned()),
            peer: None,
        }
    }

    #[test]
    fn verbs_map_to_operations() {
        // The CLI lists with `GET ?list=true`, hvac with `LIST` and `?list=True`: all must list.
        let op = |m, q| {
            build_request(&call(m, "secret/", q, ""))
                .unwrap()
                .unwrap()
                .operation
        };
        assert_eq!(op("GET", ""), Operation::Read);
        assert_eq!(op("GET", "list=true"), Operation::List);
        assert_eq!(op("GET", "list=True"), Operation::List);
        assert_eq!(op("GET", "list=1"), Operation::List);
        assert_eq!(op("GET", "list=false"), Operation::Read);
        assert_eq!(op("LIST", ""), Operation::List);
        assert_eq!(op("PUT", ""), Operation::Update);
        assert_eq!(op("POST", ""), Operation::Update);
        assert_eq!(op("DELETE", ""), Operation::Delete);
        assert_eq!(op("PATCH", ""), Operation::Patch);
        assert!(
            build_request(&call("OPTIONS", "secret/", "", ""))
                .unwrap()
                .is_none()
        );
        assert!(build_request(&call("GET", "secret/", "list=maybe", "")).is_err());
    }

    #[test]
    fn reads_take_query_and_writes_take_body() {
        // KV v2 reads `?version=2`; a write's data must come from the body only.
        let r = build_request(&call("GET", "secret/data/a", "version=2&list=false", ""))
            .unwrap()
            .unwrap();
        assert_eq!(r.data, json!({"version": "2"}).as_object().unwrap().clone());
        let w = build_request(&call("PUT", "secret/a", "x=1", r#"{"k":"v"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(w.data, json!({"k": "v"}).as_object().unwrap().clone());
    }

    #[test]
    fn envelope_has_every_field_and_null_warnings() {
        // Clients index these fields directly; a missing key or [] instead of null breaks them.
        let resp = Response::with_data(json!({"a": 1}).as_object().unwrap().clone());
        let v = envelope("secret/a", "id".into(), resp);
        assert_eq!(
            v,
            json!({"request_id": "id", "lease_id": "", "renewable": false, "lease_duration": 0,
                   "data": {"a": 1}, "wrap_info": null, "warnings": null, "auth": null})
        );
    }

    #[test]
    fn wrapped_and_raw_answers_render_as_core_built_them() {
        // A wrapped answer carries only wrap_info; a finished body goes out verbatim.
        let wrapped = Response {
            wrap_info: Some(strongroom_api::WrapInfo {
                token: "hvs.w".into(),
                ttl: 60,
                creation_path: "sys/wrapping/wrap".into(),
                ..Default::default()
            }),
            ..Response::default()
        };
        let v = envelope("sys/wrapping/wrap", "id".into(), wrapped);
        assert_eq!(v["wrap_info"]["token"], "hvs.w");
        assert_eq!(v["wrap_info"]["ttl"], 60);
        assert_eq!(v["data"], Value::Null);
        assert_eq!(v["auth"], Value::Null);
        let raw = json!({"otp": "o", "nonce": "n"});
        let resp = Response {
            raw_body: Some(raw.clone()),
            data: Some(Map::new()),
            ..Response::default()
        };
        assert_eq!(envelope("sys/replication/x", "id".into(), resp), raw);
    }

    #[test]
    fn unwrap_answers_match_the_envelope_earlier_releases_sent() {
        // Why: earlier releases stored the finished envelope and sent it with the request id
        // put in; clients must get the same bytes now that http renders it.
        let inner = Response {
            data: json!({"k": "v", "n": 1}).as_object().cloned(),
            warnings: vec!["w".into()],
            auth: Some(strongroom_api::Auth {
                client_token: "hvs.inner".into(),
                accessor: "acc".into(),
                policies: vec!["default".into()],
                ..Default::default()
            }),
            lease: Some(strongroom_core::LeaseInfo {
                lease_id: "kv/x/1".into(),
                duration_secs: 60,
                renewable: true,
            }),
            mount_type: "kv".into(),
            ..Response::default()
        };
        for inner in [inner, Response::with_data(Map::new())] {
            let lease = inner.lease.clone().unwrap_or_default();
            let before = LogicalResponse {
                request_id: "id".into(),
                lease_id: lease.lease_id,
                renewable: lease.renewable,
                lease_duration: lease.duration_secs,
                data: inner.data.clone(),
                wrap_info: None,
                warnings: (!inner.warnings.is_empty()).then(|| inner.warnings.clone()),
                auth: inner.auth.clone(),
                mount_type: inner.mount_type.clone(),
            };
            let resp = Response {
                unwrapped: Some(Box::new(inner)),
                mount_type: "system".into(),
                ..Response::default()
            };

            let now = envelope("sys/wrapping/unwrap", "id".into(), resp);

            let before = serde_json::to_value(before).unwrap();
            assert_eq!(now.to_string(), before.to_string());
        }
    }

    #[test]
    fn injection_applies_only_to_listed_routes() {
        // hvac reads `list_policies()["keys"]` at the top level, but only Vault's listed routes do this.
        let data = json!({"keys": ["root"], "request_id": "forged"})
            .as_object()
            .unwrap()
            .clone();
        let v = envelope("sys/policy", "id".into(), Response::with_data(data.clone()));
        assert_eq!(v["keys"], json!(["root"]));
        assert_eq!(v["data"]["keys"], json!(["root"]));
        assert_eq!(v["request_id"], "id");
        let v = envelope("secret/policy", "id".into(), Response::with_data(data));
        assert!(v.get("keys").is_none());
        assert!(injects_data("sys/mounts/secret"));
        assert!(!injects_data("sys/mountsx"));
        assert!(!injects_data("sys/policies/acl"));
    }
}
