//! Raw handlers of `sys/rekey/init`, `sys/rekey/update` and `sys/rekey/verify`.
//!
//! These answer bare JSON and need no token, as in Vault: the operators' key shares are
//! the credential, and core checks them. (`sys/rekey/backup` is a logical endpoint with a
//! token and `sudo`, served through the pipeline.)

use std::sync::Arc;

use http::{Method, StatusCode};
use strongroom_api::{RekeyCancelRequest, RekeyInitRequest, RekeyUpdateRequest};
use strongroom_core::{Core, CoreError};

use crate::call::Call;
use crate::parse;
use crate::reply;

type Resp = axum::response::Response;

/// The answer for a `sys/rekey/{init,update,verify}` call.
pub(crate) async fn handle(core: &Arc<Core>, call: &Call) -> Resp {
    match call.path.as_str() {
        "sys/rekey/init" => init(core, call).await,
        "sys/rekey/update" => update(core, call).await,
        _ => verify(core, call).await,
    }
}

fn answer<T: serde::Serialize>(r: Result<T, CoreError>) -> Resp {
    match r {
        Ok(v) => reply::json(StatusCode::OK, &v),
        Err(e) => reply::core_error(&e),
    }
}

async fn init(core: &Arc<Core>, call: &Call) -> Resp {
    match call.method {
        Method::GET => answer(core.rekey_status().await),
        Method::DELETE => match parse::typed_body::<RekeyCancelRequest>(&call.body) {
            Ok(req) => match core.rekey_cancel(req).await {
                Ok(()) => reply::no_content(),
                Err(e) => reply::core_error(&e),
            },
            Err(e) => e.into(),
        },
        _ if call.is_write() => match parse::typed_body::<RekeyInitRequest>(&call.body) {
            Ok(req) => answer(core.rekey_start(req).await),
            Err(e) => e.into(),
        },
        _ => reply::method_not_allowed(),
    }
}

async fn update(core: &Arc<Core>, call: &Call) -> Resp {
    if !call.is_write() {
        return reply::method_not_allowed();
    }
    match parse::typed_body::<RekeyUpdateRequest>(&call.body) {
        Ok(req) => answer(core.rekey_update(req).await),
        Err(e) => e.into(),
    }
}

async fn verify(core: &Arc<Core>, call: &Call) -> Resp {
    match call.method {
        Method::GET => answer(core.rekey_verify_status().await),
        Method::DELETE => answer(core.rekey_verify_restart().await),
        _ if call.is_write() => match parse::typed_body::<RekeyUpdateRequest>(&call.body) {
            Ok(req) => answer(core.rekey_verify_update(req).await),
            Err(e) => e.into(),
        },
        _ => reply::method_not_allowed(),
    }
}
