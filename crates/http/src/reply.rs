//! Building HTTP answers: the exact headers Vault clients expect and the error mapping.
//!
//! hvac only parses an error body when `Content-Type` is exactly `application/json`, so every
//! answer is built here rather than with axum's `Json`, which appends nothing today but gives no
//! guarantee; and every answer says `Cache-Control: no-store` because it may carry secrets.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use strongroom_api::ErrorResponse;
use strongroom_core::CoreError;

use crate::parse::BadRequest;

const APPLICATION_JSON: &str = "application/json";

/// A response with `body` and the headers every answer carries.
pub(crate) fn with_body(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    let ct =
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static(APPLICATION_JSON));
    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_body(status, APPLICATION_JSON, bytes),
        Err(e) => {
            tracing::error!(error = %e, "failed to serialize a response body");
            errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec!["failed to encode the response".into()],
            )
        }
    }
}

/// `204 No Content`, still typed as JSON like Vault does.
pub(crate) fn no_content() -> Response {
    with_body(StatusCode::NO_CONTENT, APPLICATION_JSON, Body::empty())
}

/// `{"errors": [...]}` with `status`.
pub(crate) fn errors(status: StatusCode, messages: Vec<String>) -> Response {
    let body = ErrorResponse { errors: messages };
    match serde_json::to_vec(&body) {
        Ok(bytes) => with_body(status, APPLICATION_JSON, bytes),
        Err(_) => with_body(status, APPLICATION_JSON, r#"{"errors":[]}"#),
    }
}

/// A single-message error.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    errors(status, vec![message.into()])
}

impl From<BadRequest> for Response {
    fn from(e: BadRequest) -> Self {
        error(StatusCode::BAD_REQUEST, e.0)
    }
}

/// The status code of a core error (spec §1.2).
pub(crate) fn status_of(e: &CoreError) -> StatusCode {
    match e {
        CoreError::Sealed | CoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::PermissionDenied => StatusCode::FORBIDDEN,
        CoreError::InvalidRequest(_)
        | CoreError::AlreadyInitialized
        | CoreError::NotInitialized => StatusCode::BAD_REQUEST,
        CoreError::NotFound | CoreError::NotFoundWith(_) | CoreError::UnsupportedPath(_) => {
            StatusCode::NOT_FOUND
        }
        CoreError::UnsupportedOperation => StatusCode::METHOD_NOT_ALLOWED,
        CoreError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error answer for a core error. Internal errors are logged (the message never holds
/// request bodies or tokens: core builds it from its own state).
pub(crate) fn core_error(e: &CoreError) -> Response {
    let status = status_of(e);
    match e {
        CoreError::NotFound => errors(status, Vec::new()),
        CoreError::Internal(_) => {
            tracing::error!(error = %e, "request failed with an internal error");
            error(status, e.to_string())
        }
        _ => error(status, e.to_string()),
    }
}

/// `405` for a verb a raw endpoint does not serve.
pub(crate) fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_has_the_spec_status() {
        // Clients (hvac) map status codes to exception types; a wrong code is a wrong exception.
        let cases = [
            (CoreError::Sealed, 503),
            (CoreError::PermissionDenied, 403),
            (CoreError::InvalidRequest("x".into()), 400),
            (CoreError::NotFound, 404),
            (CoreError::UnsupportedPath("x".into()), 404),
            (CoreError::UnsupportedOperation, 405),
            (CoreError::AlreadyInitialized, 400),
            (CoreError::NotInitialized, 400),
            (CoreError::Unavailable("x".into()), 503),
            (CoreError::TooLarge("x".into()), 413),
            (CoreError::Internal("x".into()), 500),
        ];
        for (e, code) in cases {
            assert_eq!(status_of(&e).as_u16(), code, "{e:?}");
        }
    }

    #[test]
    fn error_answers_carry_exact_json_content_type() {
        // hvac compares Content-Type by string equality; a charset suffix hides every error.
        let r = error(StatusCode::BAD_REQUEST, "x");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }
}
