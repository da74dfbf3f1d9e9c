//! The node's own operations that answer outside the envelope: seal, step-down, metrics and
//! raft snapshots.
//!
//! They used to be separate core methods with their own, smaller authorization; now they
//! are ordinary routes behind the door (so they are audited, spend token uses and honour
//! CIDR bounds like every other request), and only `http` treats their answers differently.
//! The `Core` methods at the bottom build the same request and send it through the door,
//! for tests and in-process callers.

use serde_json::{Map, Value};

use crate::{Core, CoreError, MetricsFormat, Operation, RawBody, Request, Response};

/// `sys/seal`, `sys/step-down`, `sys/metrics`, `sys/storage/raft/snapshot[-force]`; `None`
/// when `req` is not one of these paths.
pub(crate) async fn route(core: &Core, req: &Request) -> Option<Result<Response, CoreError>> {
    let write = crate::pipeline::writes(req.operation);
    let result = match (req.path.as_str(), req.operation) {
        ("sys/seal", _) if write => seal(core).await,
        ("sys/metrics", Operation::Read) => metrics(core, &req.data),
        ("sys/storage/raft/snapshot", Operation::Read) => snapshot(core).await,
        ("sys/storage/raft/snapshot", _) if write => restore(core, req, false).await,
        ("sys/storage/raft/snapshot-force", _) if write => restore(core, req, true).await,
        (
            "sys/seal"
            | "sys/metrics"
            | "sys/storage/raft/snapshot"
            | "sys/storage/raft/snapshot-force",
            _,
        ) => Err(CoreError::UnsupportedOperation),
        _ => return None,
    };
    Some(result)
}

async fn seal(core: &Core) -> Result<Response, CoreError> {
    let _guard = core.seal_state.transition.lock().await;
    core.seal_internal().await;
    Ok(Response::no_content())
}

/// The metrics in the format named by the `format` parameter (JSON by default).
fn metrics(core: &Core, data: &Map<String, Value>) -> Result<Response, CoreError> {
    let format = parse_format(crate::util::str_param(data, "format")?)?;
    let (content_type, text) = core.config.telemetry.render(format)?;
    Ok(raw(content_type, text.into_bytes()))
}

/// Parses `sys/metrics`' `format` parameter.
pub fn parse_format(format: Option<&str>) -> Result<MetricsFormat, CoreError> {
    match format {
        None | Some("") | Some("json") => Ok(MetricsFormat::Json),
        Some("prometheus") => Ok(MetricsFormat::Prometheus),
        Some(other) => Err(CoreError::InvalidRequest(format!(
            "unknown metrics format {other:?}: use \"json\" or \"prometheus\""
        ))),
    }
}

async fn snapshot(core: &Core) -> Result<Response, CoreError> {
    let archive = core.build_snapshot().await?;
    Ok(raw("application/octet-stream", archive))
}

async fn restore(core: &Core, req: &Request, force: bool) -> Result<Response, CoreError> {
    let body = req.raw_body.as_deref().unwrap_or_default();
    core.restore_snapshot(body, force).await?;
    Ok(Response::no_content())
}

fn raw(content_type: &'static str, bytes: Vec<u8>) -> Response {
    Response {
        raw: Some(RawBody {
            content_type,
            bytes: bytes.into(),
        }),
        mount_type: "system".into(),
        ..Response::default()
    }
}

/// In-process callers of the raw routes: each builds the request `http` would and sends it
/// through the door.
impl Core {
    /// `PUT sys/seal` with `token`.
    pub async fn seal(&self, token: Option<&str>) -> Result<(), CoreError> {
        self.handle(request(Operation::Update, "sys/seal", token))
            .await
            .map(|_| ())
    }

    /// `PUT sys/step-down` with `token`.
    pub async fn step_down(&self, token: Option<&str>) -> Result<(), CoreError> {
        self.handle(request(Operation::Update, "sys/step-down", token))
            .await
            .map(|_| ())
    }

    /// `GET sys/metrics` with `token`: the content type and the rendered text.
    pub async fn metrics(
        &self,
        token: Option<&str>,
        format: MetricsFormat,
    ) -> Result<(&'static str, String), CoreError> {
        let mut req = request(Operation::Read, "sys/metrics", token);
        let name = match format {
            MetricsFormat::Json => "json",
            MetricsFormat::Prometheus => "prometheus",
        };
        req.data.insert("format".into(), Value::String(name.into()));
        let body = raw_answer(self.handle(req).await?)?;
        let text = String::from_utf8(body.bytes.to_vec())
            .map_err(|_| CoreError::Internal("metrics are not UTF-8".into()))?;
        Ok((body.content_type, text))
    }

    /// `GET sys/storage/raft/snapshot` with `token`: the archive.
    pub async fn snapshot_save(&self, token: Option<&str>) -> Result<Vec<u8>, CoreError> {
        let req = request(Operation::Read, "sys/storage/raft/snapshot", token);
        Ok(raw_answer(self.handle(req).await?)?.bytes.to_vec())
    }

    /// `PUT sys/storage/raft/snapshot[-force]` with `token` and the archive as body.
    pub async fn snapshot_restore(
        &self,
        token: Option<&str>,
        body: &[u8],
        force: bool,
    ) -> Result<(), CoreError> {
        let path = if force {
            "sys/storage/raft/snapshot-force"
        } else {
            "sys/storage/raft/snapshot"
        };
        let mut req = request(Operation::Update, path, token);
        req.raw_body = Some(bytes::Bytes::copy_from_slice(body));
        self.handle(req).await.map(|_| ())
    }

    /// Runs the door's checks for `req` without auditing it or spending a token use, so
    /// `http` can decide how large a body to accept before reading it (only a caller the
    /// door would admit may make the server buffer a snapshot). The request itself then
    /// passes the whole door.
    pub async fn preflight(&self, req: &Request) -> Result<(), CoreError> {
        crate::pipeline::preflight(self, req).await
    }
}

fn request(op: Operation, path: &str, token: Option<&str>) -> Request {
    let mut req = Request::new(op, path);
    req.token = token.map(str::to_owned);
    req
}

fn raw_answer(resp: Response) -> Result<RawBody, CoreError> {
    resp.raw
        .ok_or_else(|| CoreError::Internal("expected a raw answer from a raw route".into()))
}
