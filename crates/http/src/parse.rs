//! Reading the pieces of a Vault HTTP request: path, token, query, body, wrapping TTL.
//!
//! Vault clients disagree in small ways (hvac sends `?list=True`, the Go client sends durations
//! as `"15m"`, some send `Authorization: Bearer`), and a client that gets a 500 for a malformed
//! input cannot tell its own mistake from a server fault. Every parser here therefore returns a
//! [`BadRequest`] carrying a message the client can act on, which becomes a 400.

use std::time::Duration;

use http::HeaderMap;
use serde_json::{Map, Value};

/// A client mistake, answered with 400 and this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub String);

impl BadRequest {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        BadRequest(msg.into())
    }
}

/// The logical path below `/v1/`: percent-decoded, doubled slashes collapsed, no leading slash.
///
/// `.` and `..` segments are refused: Vault's router never sees them (Go's mux cleans them
/// away) and letting them through would make ACL prefixes and storage keys disagree.
pub(crate) fn logical_path(raw_path: &str) -> Result<Option<String>, BadRequest> {
    let rest = match raw_path.strip_prefix("/v1") {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return Ok(None),
    };
    let decoded = percent_decode(rest)?;
    let mut out = String::with_capacity(decoded.len());
    let trailing_slash = decoded.ends_with('/') && decoded.len() > 1;
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(BadRequest::new(format!(
                "invalid request path {raw_path:?}: '.' and '..' segments are not allowed"
            )));
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(segment);
    }
    if trailing_slash && !out.is_empty() {
        out.push('/');
    }
    Ok(Some(out))
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, BadRequest> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| BadRequest::new("invalid percent-encoding in request path"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadRequest::new("request path is not valid UTF-8"))
}

/// The client token: `X-Vault-Token`, else `Authorization: Bearer <token>`. Empty means none.
pub(crate) fn token(headers: &HeaderMap) -> Result<Option<String>, BadRequest> {
    if let Some(v) = headers.get("x-vault-token") {
        let t = v
            .to_str()
            .map_err(|_| BadRequest::new("the X-Vault-Token header must be printable ASCII"))?
            .trim();
        if !t.is_empty() {
            return Ok(Some(t.to_owned()));
        }
    }
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| BadRequest::new("the Authorization header must be printable ASCII"))?;
        if let Some((scheme, t)) = v.trim().split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            let t = t.trim();
            if !t.is_empty() {
                return Ok(Some(t.to_owned()));
            }
        }
    }
    Ok(None)
}

/// `X-Vault-Namespace`: this server has only the root namespace.
pub(crate) fn check_namespace(headers: &HeaderMap) -> Result<(), BadRequest> {
    let Some(v) = headers.get("x-vault-namespace") else {
        return Ok(());
    };
    let ns = v.to_str().unwrap_or("invalid").trim().trim_matches('/');
    if ns.is_empty() || ns == "root" {
        Ok(())
    } else {
        Err(BadRequest::new(
            "namespaces are not supported by this server",
        ))
    }
}

/// `X-Vault-Wrap-TTL`: seconds or a Go duration; zero means no wrapping.
pub(crate) fn wrap_ttl(headers: &HeaderMap) -> Result<Option<Duration>, BadRequest> {
    let Some(v) = headers.get("x-vault-wrap-ttl") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| BadRequest::new("invalid X-Vault-Wrap-TTL header"))?;
    let d = parse_ttl(s)
        .map_err(|e| BadRequest::new(format!("invalid X-Vault-Wrap-TTL header: {e}")))?;
    Ok((!d.is_zero()).then_some(d))
}

/// Parses a TTL: an integer number of seconds or a Go duration (`90s`, `1h30m`, `1.5h`, `2d`).
pub(crate) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err(format!("{s:?} is negative"));
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?} is missing a unit (s, m, h, d)"))?;
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds or a duration like \"30s\""))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => return Err(format!("{s:?} has an unknown unit {other:?}")),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("{s:?} is out of range"))
}

/// Vault's boolean flags in query strings (`1`, `t`, `true`, `True`, `TRUE`, and the negatives).
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "True" | "TRUE" => Some(true),
        "0" | "f" | "F" | "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Query parameters in order, decoded.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The first value of query parameter `name`.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Query parameters as request data: one value → string, repeated → array of strings.
pub(crate) fn query_data(pairs: &[(String, String)], skip: &[&str]) -> Map<String, Value> {
    let mut data = Map::new();
    for (k, v) in pairs.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
        match data.get_mut(k) {
            None => {
                data.insert(k.clone(), Value::String(v.clone()));
            }
            Some(Value::Array(items)) => items.push(Value::String(v.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v.clone())]);
            }
        }
    }
    data
}

/// A request body as a JSON value; an empty body is `None`.
pub(crate) fn json_body(body: &[u8]) -> Result<Option<Value>, BadRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| BadRequest::new(format!("failed to parse JSON input: {e}")))
}

/// A request body as the data of a logical request: a JSON object, or a form when the client
/// says so and the body is not JSON.
pub(crate) fn body_data(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, BadRequest> {
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if is_form && !matches!(first, Some(b'{') | Some(b'[')) {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        return Ok(query_data(&pairs, &[]));
    }
    match json_body(body)? {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(BadRequest::new(
            "failed to parse JSON input: the request body must be a JSON object",
        )),
    }
}

/// A raw endpoint's typed body; an empty body is the type's default.
pub(crate) fn typed_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, BadRequest> {
    match json_body(body)? {
        None => Ok(T::default()),
        Some(v @ Value::Object(_)) => serde_json::from_value(v)
            .map_err(|e| BadRequest::new(format!("invalid request body: {e}"))),
        Some(_) => Err(BadRequest::new(
            "failed to parse JSON input: the request body must be a JSON object",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_below_v1() {
        // Clients double slashes and percent-encode names; core must see one canonical path.
        assert_eq!(
            logical_path("/v1/secret//foo").unwrap().as_deref(),
            Some("secret/foo")
        );
        assert_eq!(
            logical_path("/v1//sys/mounts").unwrap().as_deref(),
            Some("sys/mounts")
        );
        assert_eq!(
            logical_path("/v1/secret/a%20b").unwrap().as_deref(),
            Some("secret/a b")
        );
        assert_eq!(
            logical_path("/v1/secret/dir/").unwrap().as_deref(),
            Some("secret/dir/")
        );
        assert_eq!(logical_path("/v2/secret").unwrap(), None);
        assert_eq!(logical_path("/v1x").unwrap(), None);
        assert!(logical_path("/v1/secret/../sys/seal").is_err());
        assert!(logical_path("/v1/secret/%zz").is_err());
    }

    #[test]
    fn ttls_accept_seconds_and_go_durations() {
        // The Go client sends "15m"; hvac sends "60"; both must mean the same thing as Vault.
        assert_eq!(parse_ttl("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_ttl("-5").is_err());
        assert!(parse_ttl("-5s").is_err());
        assert!(parse_ttl("abc").is_err());
        assert!(parse_ttl("5").is_ok());
        assert!(parse_ttl("5x").is_err());
        assert!(parse_ttl("").is_err());
    }

    #[test]
    fn bearer_token_is_used_only_without_x_vault_token() {
        // The spec gives X-Vault-Token priority; a mix-up would authenticate the wrong token.
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(token(&h).unwrap().as_deref(), Some("abc"));
        h.insert("x-vault-token", "xyz".parse().unwrap());
        assert_eq!(token(&h).unwrap().as_deref(), Some("xyz"));
        let mut basic = HeaderMap::new();
        basic.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(token(&basic).unwrap(), None);
    }

    #[test]
    fn repeated_query_parameters_become_arrays() {
        // Vault turns `?a=1&a=2` into a list; backends rely on the single-value case being a string.
        let pairs = query_pairs(Some("a=1&a=2&b=x%20y&list=true"));
        let data = query_data(&pairs, &["list"]);
        assert_eq!(data["a"], serde_json::json!(["1", "2"]));
        assert_eq!(data["b"], "x y");
        assert!(!data.contains_key("list"));
    }

    #[test]
    fn bodies_must_be_json_objects() {
        // A JSON array or scalar is a client error, never a 500.
        let h = HeaderMap::new();
        assert!(body_data(&h, b"").unwrap().is_empty());
        assert_eq!(body_data(&h, br#"{"a":1}"#).unwrap()["a"], 1);
        assert!(body_data(&h, b"[1]").is_err());
        let err = body_data(&h, b"{bad").unwrap_err();
        assert!(
            err.0.starts_with("failed to parse JSON input: "),
            "{}",
            err.0
        );
    }
}
