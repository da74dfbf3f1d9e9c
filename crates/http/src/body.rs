//! Request bodies: read whole under a size limit, and refuse an oversized one so that every
//! client, HTTP/1.1 or HTTP/2, hears the 413 and its reason.
//!
//! Refusing is the easy half; being heard is the other. Over HTTP/2 a server that answers
//! early and then drops the request body makes its stack reset the stream (`RST_STREAM`,
//! NO_ERROR) while the client is still uploading, and many clients (curl among them) then
//! report a broken stream instead of the answer. So after an HTTP/2 refusal the rest of the
//! body is read and thrown away in the background, bounded in bytes and time, and the stream
//! ends cleanly. Nothing is buffered while draining: memory stays bounded by the limit.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, Version};
use http_body_util::BodyExt;

use crate::reply;
use crate::router::DEFAULT_MAX_REQUEST_SIZE;

/// Time allowed to receive a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to receive a snapshot upload.
const BODY_READ_TIMEOUT_LARGE: Duration = Duration::from_secs(600);
/// Most bytes of a refused HTTP/2 body read and discarded so the client hears the 413.
const DRAIN_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest time spent discarding a refused HTTP/2 body.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a body was not read whole.
enum Refusal {
    TooLarge,
    Broken(axum::Error),
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub(crate) async fn read_body(
    version: Version,
    headers: &HeaderMap,
    mut body: Body,
    limit: u64,
) -> Result<Bytes, Response> {
    let too_large = |body: Body| {
        if version == Version::HTTP_2 {
            drain_in_background(body);
        }
        reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "http: request body too large: the limit for this path is {limit} bytes (listener max_request_size)"
            ),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(body));
    }
    // A client that trickles its body cannot hold a connection slot forever (Vault's
    // http_read_timeout defaults to 30 s; snapshot uploads get longer).
    let read_timeout = if limit > DEFAULT_MAX_REQUEST_SIZE {
        BODY_READ_TIMEOUT_LARGE
    } else {
        BODY_READ_TIMEOUT
    };
    let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
    match tokio::time::timeout(read_timeout, collect_within(&mut body, limit_bytes)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(Refusal::TooLarge)) => Err(too_large(body)),
        Ok(Err(Refusal::Broken(e))) => {
            tracing::debug!(error = %e, "failed to read a request body");
            Err(reply::error(
                StatusCode::BAD_REQUEST,
                "failed to read the request body",
            ))
        }
        Err(_) => Err(reply::error(
            StatusCode::REQUEST_TIMEOUT,
            format!("timed out after {read_timeout:?} reading the request body"),
        )),
    }
}

/// Collects `body` while it stays within `limit` bytes; leaves the rest unread.
async fn collect_within(body: &mut Body, limit: usize) -> Result<Bytes, Refusal> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Refusal::Broken)?;
        if let Some(data) = frame.data_ref() {
            if data.len() > limit.saturating_sub(buf.len()) {
                return Err(Refusal::TooLarge);
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards what is left of a refused body, within [`DRAIN_MAX_BYTES`] and
/// [`DRAIN_TIMEOUT`]; past either bound the body is dropped and the stream reset.
fn drain_in_background(mut body: Body) {
    tokio::spawn(async move {
        let mut seen: u64 = 0;
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    seen = seen.saturating_add(data.len() as u64);
                    if seen > DRAIN_MAX_BYTES {
                        return false;
                    }
                }
            }
            true
        })
        .await;
        if drained != Ok(true) {
            tracing::debug!(
                discarded = seen,
                "stopped discarding a refused request body; its stream is reset"
            );
        }
    });
}
