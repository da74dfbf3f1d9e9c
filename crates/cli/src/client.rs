//! The HTTP client the commands use to talk to the server.
//!
//! Commands are plain synchronous code; this type hides the async reqwest client behind a
//! private single-threaded runtime, adds the headers every Vault client sends, retries the
//! responses Vault's client retries, and turns error bodies into Vault's familiar
//! "Error making API request" text.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;
use strongroom_api::{API_PREFIX, ErrorResponse};
use thiserror::Error;
use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

use crate::config::Config;

/// Size of the chunks a snapshot upload is streamed in.
const UPLOAD_CHUNK: usize = 64 * 1024;
/// First retry delay; doubled per attempt and capped at [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_millis(1500);

/// A non-2xx answer from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub method: String,
    pub url: String,
    pub status: u16,
    /// The `errors` list of the body.
    pub errors: Vec<String>,
    /// The body when it was not a Vault error object (shown instead of `errors`).
    pub raw: String,
    /// The whole body as received: some error statuses carry a full answer (KV v2 answers 404
    /// with the metadata of a deleted version).
    pub body: Vec<u8>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Error making API request.\n\nURL: {} {}\n",
            self.method, self.url
        )?;
        if self.errors.is_empty() && !self.raw.is_empty() {
            write!(f, "Code: {}. Raw Message:\n\n{}", self.status, self.raw)
        } else {
            write!(f, "Code: {}. Errors:\n\n", self.status)?;
            let lines: Vec<String> = self.errors.iter().map(|e| format!("* {e}")).collect();
            write!(f, "{}", lines.join("\n"))
        }
    }
}

/// Why a request failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The request never got an answer (connection, TLS, timeout).
    #[error("{method} {url}: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
    },
    /// The server answered 2xx with a body that is not the expected JSON.
    #[error("invalid response from {method} {url}: {message}")]
    Decode {
        method: String,
        url: String,
        message: String,
    },
    /// The local configuration is unusable (certificates, address, headers).
    #[error("{0}")]
    Config(String),
    /// A local file could not be read or written while streaming.
    #[error("{0}")]
    Io(String),
}

impl ClientError {
    /// Whether the failure happened on this machine (exit 1) rather than remotely (exit 2).
    pub fn is_local(&self) -> bool {
        matches!(self, ClientError::Config(_) | ClientError::Io(_))
    }

    /// The body of an error answer, parsed as JSON, when it is a JSON object.
    pub fn error_body(&self) -> Option<Value> {
        match self {
            ClientError::Api(api) => serde_json::from_slice::<Value>(&api.body)
                .ok()
                .filter(Value::is_object),
            _ => None,
        }
    }

    /// The HTTP status when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(api) => Some(api.status),
            _ => None,
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub body: Vec<u8>,
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// A JSON merge patch (RFC 7396), which KV v2 `PATCH` requires as its content type.
    MergePatch(&'a Value),
}

/// Content type of a JSON merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// A configured connection to one server.
pub struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    address: String,
    token: Option<Zeroizing<String>>,
    namespace: Option<String>,
    wrap_ttl: Option<String>,
    timeout: Duration,
    max_retries: u32,
}

impl Client {
    /// Builds a client from resolved settings. Fails on unusable TLS material.
    pub fn new(config: &Config) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            // Per-read inactivity limit: also bounds streamed snapshots, which have no total timeout.
            .read_timeout(config.timeout)
            .user_agent(concat!("strongroom-cli/", env!("CARGO_PKG_VERSION")));
        let tls = if config.address.starts_with("https://") {
            crate::tls::client_config(config)?
        } else {
            // Plain HTTP needs no TLS, but reqwest still wants a configuration (it has no
            // built-in provider). Use the real one when it loads so an https redirect is still
            // verified; otherwise one that refuses every server.
            crate::tls::client_config(config).or_else(|_| crate::tls::refuse_all_config())?
        };
        builder = builder.tls_backend_preconfigured(tls);
        let http = builder
            .build()
            .map_err(|err| ClientError::Config(format!("Error creating the HTTP client: {err}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| ClientError::Config(format!("Error starting the I/O runtime: {err}")))?;
        Ok(Self {
            http,
            runtime,
            address: config.address.clone(),
            token: config.token.clone(),
            namespace: config.namespace.clone(),
            wrap_ttl: config.wrap_ttl.clone(),
            timeout: config.timeout,
            max_retries: config.max_retries,
        })
    }

    /// Replaces the token sent with later requests (used by `login`).
    pub fn set_token(&mut self, token: Option<Zeroizing<String>>) {
        self.token = token;
    }

    /// Replaces the wrap TTL sent with later requests and returns the previous one, so a
    /// request that must never be wrapped (the KV preflight) can switch it off and back on.
    pub fn set_wrap_ttl(&mut self, ttl: Option<String>) -> Option<String> {
        std::mem::replace(&mut self.wrap_ttl, ttl)
    }

    /// Sends one request and parses the answer as JSON; `Ok(None)` for an empty (204) body.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
    ) -> Result<Option<Value>, ClientError> {
        let response = self.request(method.clone(), path, query, body)?;
        let url = self.url_with_query(path, query)?;
        response.json(&method, &url)
    }

    /// The full URL of an API path such as `secret/foo`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}{}{}",
            self.address,
            API_PREFIX,
            escape_path(path.trim_start_matches('/'))
        )
    }

    /// The full URL with `query` appended (percent-encoded).
    fn url_with_query(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<String, ClientError> {
        let base = self.url(path);
        if query.is_empty() {
            return Ok(base);
        }
        let mut url = reqwest::Url::parse(&base)
            .map_err(|err| ClientError::Config(format!("Invalid request URL {base}: {err}")))?;
        url.query_pairs_mut().extend_pairs(query);
        Ok(url.to_string())
    }

    /// Sends one request, retrying 412 and 5xx (except 501) answers and refused connections.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
    ) -> Result<Response, ClientError> {
        let url = self.url_with_query(path, query)?;
        let (content_type, value) = match body {
            Body::None => ("application/json", None),
            Body::Json(value) => ("application/json", Some(value)),
            Body::MergePatch(value) => (MERGE_PATCH, Some(value)),
        };
        let payload = match value {
            None => None,
            // Bodies may carry secrets (unseal keys, passwords): wipe our copy afterwards.
            Some(value) => Some(Zeroizing::new(serde_json::to_vec(value).map_err(
                |err| ClientError::Config(format!("Error encoding the request body: {err}")),
            )?)),
        };
        let headers = self.headers()?;
        self.runtime.block_on(async {
            let mut attempt = 0u32;
            loop {
                let mut request = self
                    .http
                    .request(method.clone(), &url)
                    .headers(headers.clone())
                    .timeout(self.timeout);
                if let Some(payload) = &payload {
                    request = request
                        .header(CONTENT_TYPE, content_type)
                        .body(payload.to_vec());
                }
                let retry_left = attempt < self.max_retries;
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        if retry_left && is_retryable(status) {
                            tokio::time::sleep(backoff(attempt)).await;
                            attempt += 1;
                            continue;
                        }
                        let bytes = response
                            .bytes()
                            .await
                            .map_err(|err| transport(&method, &url, &err))?;
                        return finish(&method, &url, status, bytes.to_vec());
                    }
                    Err(err) if retry_left && err.is_connect() => {
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                    Err(err) => return Err(transport(&method, &url, &err)),
                }
            }
        })
    }

    /// GET, parsed as JSON. `Ok(None)` for an empty (204) body.
    pub fn get_json(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.request(Method::GET, path, &[], Body::None)
            .and_then(|resp| resp.json(&Method::GET, &self.url(path)))
    }

    /// PUT with a JSON body, parsed as JSON. `Ok(None)` for an empty (204) body.
    pub fn put_json(&self, path: &str, body: &Value) -> Result<Option<Value>, ClientError> {
        self.request(Method::PUT, path, &[], Body::Json(body))
            .and_then(|resp| resp.json(&Method::PUT, &self.url(path)))
    }

    /// GETs `path` and streams the body into `out`. Returns the byte count. Not retried once
    /// bytes have been written.
    pub fn download(&self, path: &str, out: &mut dyn Write) -> Result<u64, ClientError> {
        let url = self.url(path);
        let headers = self.headers()?;
        self.runtime.block_on(async {
            let method = Method::GET;
            let response = self
                .http
                .get(&url)
                .headers(headers)
                .send()
                .await
                .map_err(|err| transport(&method, &url, &err))?;
            let status = response.status().as_u16();
            if !(200..300).contains(&status) {
                let body = response
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                return Err(ClientError::Api(Box::new(api_error(
                    &method, &url, status, &body,
                ))));
            }
            let mut written = 0u64;
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|err| transport(&method, &url, &err))?;
                out.write_all(&chunk)
                    .map_err(|err| ClientError::Io(format!("Error writing the download: {err}")))?;
                written += chunk.len() as u64;
            }
            Ok(written)
        })
    }

    /// POSTs the contents of `file` to `path` as a stream. Not retried.
    pub fn upload(&self, path: &str, file: std::fs::File) -> Result<Response, ClientError> {
        let url = self.url(path);
        let headers = self.headers()?;
        self.runtime.block_on(async {
            let method = Method::POST;
            let file = tokio::fs::File::from_std(file);
            let chunks = futures::stream::try_unfold(file, |mut file| async move {
                let mut buf = vec![0u8; UPLOAD_CHUNK];
                let read = file.read(&mut buf).await?;
                if read == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                buf.truncate(read);
                Ok(Some((buf, file)))
            });
            let response = self
                .http
                .post(&url)
                .headers(headers)
                .body(reqwest::Body::wrap_stream(chunks))
                .send()
                .await
                .map_err(|err| transport(&method, &url, &err))?;
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map_err(|err| transport(&method, &url, &err))?;
            finish(&method, &url, status, body.to_vec())
        })
    }

    fn headers(&self) -> Result<HeaderMap, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(token).map_err(|_| {
                ClientError::Config(
                    "The token contains characters that cannot be sent in a header".to_string(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert("X-Vault-Token", value);
        }
        if let Some(namespace) = &self.namespace {
            let value = HeaderValue::from_str(namespace)
                .map_err(|_| ClientError::Config(format!("Invalid namespace {namespace:?}")))?;
            headers.insert("X-Vault-Namespace", value);
        }
        if let Some(ttl) = &self.wrap_ttl {
            let value = HeaderValue::from_str(ttl)
                .map_err(|_| ClientError::Config(format!("Invalid wrap TTL {ttl:?}")))?;
            headers.insert("X-Vault-Wrap-TTL", value);
        }
        Ok(headers)
    }
}

impl Response {
    /// The body as JSON; `None` when empty.
    pub fn json(&self, method: &Method, url: &str) -> Result<Option<Value>, ClientError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|err| ClientError::Decode {
                method: method.to_string(),
                url: url.to_string(),
                message: err.to_string(),
            })
    }
}

/// Vault's client retries precondition failures and server errors, except "not initialized".
pub fn is_retryable(status: u16) -> bool {
    status == 412 || ((500..600).contains(&status) && status != 501)
}

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(MAX_BACKOFF)
}

fn finish(method: &Method, url: &str, status: u16, body: Vec<u8>) -> Result<Response, ClientError> {
    if (200..300).contains(&status) {
        Ok(Response { body })
    } else {
        Err(ClientError::Api(Box::new(api_error(
            method, url, status, &body,
        ))))
    }
}

/// Builds the error for a non-2xx answer from its body.
pub fn api_error(method: &Method, url: &str, status: u16, body: &[u8]) -> ApiError {
    let (errors, raw) = match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(parsed) => (parsed.errors, String::new()),
        Err(_) => (Vec::new(), String::from_utf8_lossy(body).trim().to_string()),
    };
    ApiError {
        method: method.to_string(),
        url: url.to_string(),
        status,
        errors,
        raw,
        body: body.to_vec(),
    }
}

fn transport(method: &Method, url: &str, err: &reqwest::Error) -> ClientError {
    // reqwest's own message names the URL; the interesting part is in the source chain.
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    let message = if err.is_timeout() {
        "request timed out (raise VAULT_CLIENT_TIMEOUT if the server is slow)".to_string()
    } else if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    };
    ClientError::Transport {
        method: method.to_string(),
        url: url.to_string(),
        message,
    }
}

/// Percent-escapes the characters that would otherwise end or corrupt the URL path.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            ' ' => out.push_str("%20"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The retry policy must match Vault's: 412 and 5xx, but never 501 (not initialized).
    #[test]
    fn retryable_statuses() {
        assert!(is_retryable(412));
        assert!(is_retryable(500));
        assert!(is_retryable(503));
        assert!(!is_retryable(501));
        assert!(!is_retryable(400));
        assert!(!is_retryable(404));
        assert!(!is_retryable(429));
    }

    // Backoff grows but stays small enough for interactive use.
    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    // Error bodies are shown the way the Vault CLI shows them; non-JSON bodies verbatim.
    #[test]
    fn api_error_rendering() {
        let json = api_error(
            &Method::GET,
            "http://a/v1/x",
            403,
            br#"{"errors":["permission denied","second"]}"#,
        );
        let raw = api_error(&Method::POST, "http://a/v1/y", 502, b"bad gateway\n");

        assert_eq!(
            json.to_string(),
            "Error making API request.\n\nURL: GET http://a/v1/x\nCode: 403. Errors:\n\n\
             * permission denied\n* second"
        );
        assert_eq!(
            raw.to_string(),
            "Error making API request.\n\nURL: POST http://a/v1/y\nCode: 502. Raw Message:\n\nbad gateway"
        );
    }

    // Characters that would cut the URL short are escaped; ordinary path characters are not.
    #[test]
    fn path_escaping() {
        assert_eq!(escape_path("secret/a b?c#d%e"), "secret/a%20b%3Fc%23d%25e");
        assert_eq!(escape_path("sys/mounts/kv-v2_x.y"), "sys/mounts/kv-v2_x.y");
    }

    // An empty 204 body is "no data", not a JSON error.
    #[test]
    fn empty_body_is_none() {
        let resp = Response { body: Vec::new() };
        assert!(resp.json(&Method::GET, "u").unwrap().is_none());
        let bad = Response {
            body: b"<html>".to_vec(),
        };
        assert!(matches!(
            bad.json(&Method::GET, "u"),
            Err(ClientError::Decode { .. })
        ));
    }
}
