//! `POST /v1/admin/kernels/{family}/{name}/{action}`: operator controls of a kernel's breaker
//! (`force-open`, `reset`, `metrics-only`). The route's layer requires a token whenever the
//! service has tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::kernels::KernelError;

/// An operator action on one kernel's breaker.
pub(super) async fn admin(
    State(state): State<Arc<AppState>>,
    Path((family, name, action)): Path<(String, String, String)>,
) -> Response {
    let id = format!("{family}/{name}");
    let Some(breaker) = state
        .kernels
        .get(id.as_str())
        .and_then(|slot| slot.pipeline.breaker())
    else {
        return ApiError::NotFound(KernelError::UnknownKernel(id).to_string()).into_response();
    };
    match action.as_str() {
        "force-open" => {
            breaker.force_open();
        }
        "reset" => {
            breaker.reset();
        }
        "metrics-only" => {
            breaker.metrics_only();
        }
        other => {
            return ApiError::NotFound(format!("no admin action {other:?}")).into_response();
        }
    }
    tracing::warn!(kernel = %id, %action, "operator changed a circuit breaker");
    super::health::push_kernel(&state, &id);
    Json(serde_json::json!({
        "kernel": id,
        "breaker": breaker.state().label(),
    }))
    .into_response()
}
