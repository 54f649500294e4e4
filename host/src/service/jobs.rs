//! The jobs routes: parse, call the [`JobRunner`], map its answer.
//! Behind the same token layer, body limit, rate limit and error body as the execute route.
//!
//! | Route | Answers |
//! |---|---|
//! | `POST /v1/jobs` | 202 with the job ([`JobStatus`]) and `Location: /v1/jobs/{id}`; 400 for a bad spec or input (checked now, not when it starts); 429 with `Retry-After` when the queue is full |
//! | `GET /v1/jobs/{id}` | 200 with the job: state, progress, last checkpoint, resumes, and the result once it succeeded; 404 for an unknown id |
//! | `DELETE /v1/jobs/{id}` | 200 with the cancelled job; 202 when the service running it will stop it within an iteration or at its next checkpoint; 409 when it is over already |
//! | `GET /v1/jobs?after=ID&limit=N` | 200 with a page of jobs, oldest first ([`JobPage`]), `limit` 1 to 1000 (default 50) |
//!
//! With no `[jobs] dir` every route answers 404 saying so.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::metrics::HttpLabels;
use crate::jobs::{
    CancelError, Cancelled, JobId, JobPage, JobRunner, JobSpec, JobStatus, SubmitError,
};

/// The most jobs a page lists.
pub const MAX_PAGE: usize = 1000;
/// A page's length when the query gives none.
pub const DEFAULT_PAGE: usize = 50;

const COLLECTION: &str = "/v1/jobs";
const ONE: &str = "/v1/jobs/{id}";

/// `GET /v1/jobs`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `POST /v1/jobs`.
pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = async {
        let runner = runner(&state)?;
        admit(&state, client)?;
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(state.config.body_limit)
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        let spec: JobSpec = serde_json::from_slice(&body)
            .map_err(|error| ApiError::BadRequest(format!("the job: {error}")))?;
        drop(body);
        let record = runner.submit(spec).await.map_err(|error| match error {
            SubmitError::Invalid(why) => ApiError::BadRequest(why),
            SubmitError::Full {
                queued,
                retry_after,
            } => ApiError::Shed {
                reason: format!("{queued} jobs are queued, the limit"),
                retry_after,
            },
            SubmitError::Draining => ApiError::Draining,
            SubmitError::Store(error) => ApiError::Internal(error.to_string()),
        })?;
        let location = format!("{COLLECTION}/{}", record.id);
        let mut response = (
            StatusCode::ACCEPTED,
            Json(JobStatus {
                record,
                result: None,
            }),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Ok(response)
    }
    .await;
    answer_and_count(&state, COLLECTION, answer)
}

/// `GET /v1/jobs/{id}`.
pub(super) async fn status(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let answer = async {
        let runner = runner(&state)?;
        let id = job_id(&id)?;
        match runner.status(&id).await {
            Ok(Some(status)) => Ok((StatusCode::OK, Json(status)).into_response()),
            Ok(None) => Err(unknown(&id)),
            Err(error) => Err(ApiError::Internal(error.to_string())),
        }
    }
    .await;
    answer_and_count(&state, ONE, answer)
}

/// `DELETE /v1/jobs/{id}`.
pub(super) async fn cancel(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let answer = async {
        let runner = runner(&state)?;
        let id = job_id(&id)?;
        match runner.cancel(&id).await {
            Ok(Cancelled::Done(record)) => Ok((
                StatusCode::OK,
                Json(JobStatus {
                    record,
                    result: None,
                }),
            )
                .into_response()),
            Ok(Cancelled::Requested(record)) => Ok((
                StatusCode::ACCEPTED,
                Json(JobStatus {
                    record,
                    result: None,
                }),
            )
                .into_response()),
            Err(CancelError::NotFound) => Err(unknown(&id)),
            Err(CancelError::Final(record)) => Err(ApiError::Conflict(format!(
                "job {id} is {} already",
                record.state
            ))),
            Err(CancelError::Store(error)) => Err(ApiError::Internal(error.to_string())),
        }
    }
    .await;
    answer_and_count(&state, ONE, answer)
}

/// `GET /v1/jobs`.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let answer = async {
        let runner = runner(&state)?;
        let Query(query) =
            query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let after = match query.after.as_deref() {
            Some(after) => Some(JobId::parse(after).ok_or_else(|| {
                ApiError::BadRequest(format!("after: {after:?} is not a job id"))
            })?),
            None => None,
        };
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::BadRequest(format!(
                "limit must be from 1 to {MAX_PAGE}, not {limit}"
            )));
        }
        let page: JobPage = runner
            .list(after.as_ref(), limit)
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?;
        Ok((StatusCode::OK, Json(page)).into_response())
    }
    .await;
    answer_and_count(&state, COLLECTION, answer)
}

fn runner(state: &AppState) -> Result<&JobRunner, ApiError> {
    state.jobs.as_ref().ok_or_else(|| {
        ApiError::NotFound("jobs are off on this service: set [jobs] dir".to_owned())
    })
}

/// An id from a path: anything that is not one is an unknown job.
fn job_id(text: &str) -> Result<JobId, ApiError> {
    JobId::parse(text).ok_or_else(|| ApiError::NotFound(format!("no job {text:?}")))
}

fn unknown(id: &JobId) -> ApiError {
    ApiError::NotFound(format!("no job {id}"))
}

/// Admission as the execute route's: not draining, within the client's rate.
fn admit(state: &AppState, client: SocketAddr) -> Result<(), ApiError> {
    if state.is_draining() {
        return Err(ApiError::Draining);
    }
    if let Some(limiter) = &state.rate_limiter
        && let Err(not_until) = limiter.check_key(&client.ip())
    {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(ApiError::Shed {
            reason: format!(
                "rate limit of {} requests per second exceeded",
                state.config.limits.per_client_rate
            ),
            retry_after: wait.max(Duration::from_millis(1)),
        });
    }
    Ok(())
}

fn answer_and_count(
    state: &AppState,
    route: &'static str,
    answer: Result<Response, ApiError>,
) -> Response {
    let response = answer.unwrap_or_else(IntoResponse::into_response);
    state
        .metrics
        .http
        .get_or_create(&HttpLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
