//! What the core fuzz targets share: an unsealed in-memory core and the refusal check.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use strongroom_api::{InitRequest, UnsealRequest};
use strongroom_core::{Core, CoreConfig, CoreError, Operation, Request};
use strongroom_storage::InmemStorage;

/// Longest any single call may take before the target reports a hang.
pub const CALL_LIMIT: Duration = Duration::from_secs(10);

/// A core that was initialised with `shares`/`threshold`, still sealed, and its keys and
/// root token.
pub async fn initialized(shares: u32, threshold: u32) -> (Arc<Core>, Vec<String>, String) {
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let init = core
        .init(InitRequest {
            secret_shares: shares,
            secret_threshold: threshold,
            ..Default::default()
        })
        .await
        .unwrap();
    (core, init.keys, init.root_token)
}

/// An unsealed core with one key share, and its root token.
pub async fn unsealed() -> (Arc<Core>, String) {
    let (core, keys, root) = initialized(1, 1).await;
    let status = core
        .unseal(UnsealRequest {
            key: keys.first().cloned(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!status.sealed);
    (core, root)
}

/// [`unsealed`] with a KV v1 mount at `secret/`, a KV v2 mount at `kv/` and the userpass
/// and approle auth methods, so requests reach the engines.
pub async fn with_kv() -> (Arc<Core>, String) {
    let (core, root) = unsealed().await;
    for (path, body) in [
        ("sys/mounts/secret", json!({"type": "kv"})),
        (
            "sys/mounts/kv",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
    ] {
        let data = body.as_object().cloned().unwrap_or_default();
        core.handle(
            Request::new(Operation::Update, path)
                .with_token(root.clone())
                .with_data(data),
        )
        .await
        .unwrap();
    }
    (core, root)
}

/// Runs `fut`, failing the case if it takes longer than [`CALL_LIMIT`].
pub async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(CALL_LIMIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {CALL_LIMIT:?}: a hang"),
    }
}

/// A refusal of client input must be a client error that says something: an `Internal`
/// error (500) on input a client chose is a bug, and so is an empty message.
pub fn assert_client_refusal(err: &CoreError, input: &dyn std::fmt::Debug) {
    assert!(
        !matches!(err, CoreError::Internal(_)),
        "client input caused an internal error: {err} (input: {input:?})"
    );
    let shown = err.to_string();
    assert!(!shown.trim().is_empty(), "an empty error for {input:?}");
}
