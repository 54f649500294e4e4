//! Bearer tokens checked on the execute path (and any admin route), compared in constant time.
//! Which tokens, and whether they are required, is the config's
//! ([`config::AuthConfig`](crate::config::AuthConfig)).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::{AuthConfig, AuthMode};

/// Whether an `Authorization` header value carries one of `tokens`, compared in constant time
/// (every token is compared, whatever matched first). The scheme is case-insensitive (RFC 9110,
/// 11.1: `bearer` and `BEARER` are `Bearer`); the token is not.
pub(crate) fn authorized(header: Option<&[u8]>, tokens: &[String]) -> bool {
    let Some((scheme, presented)) = header.and_then(|value| {
        let space = value.iter().position(|&b| b == b' ')?;
        Some((value.get(..space)?, value.get(space + 1..)?))
    }) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"Bearer") {
        return false;
    }
    let mut any = subtle::Choice::from(0);
    for token in tokens {
        // `ct_eq` on slices of different lengths is false (the length itself is not secret).
        any |= presented.ct_eq(token.as_bytes());
    }
    any.into()
}

/// Who a route is for: the layers below pick the token rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Guard {
    /// The execute and admin routes: a token whenever the service has tokens.
    Kernels,
    /// The health routes: a token when `auth.protect_health` is set.
    Health,
    /// `/metrics`: a token when `auth.protect_metrics` is set.
    Metrics,
}

/// Whether `guard`'s routes need a token under `auth`. The configuration is fixed at start-up,
/// so the router leaves a guard's layer out where no token is needed: those routes pay nothing.
pub(super) fn required(auth: &AuthConfig, guard: Guard) -> bool {
    auth.mode == AuthMode::Token
        && match guard {
            Guard::Kernels => true,
            Guard::Health => auth.protect_health,
            Guard::Metrics => auth.protect_metrics,
        }
}

fn check(state: &AppState, guard: Guard, headers: &HeaderMap) -> Result<(), ApiError> {
    let auth = &state.config.auth;
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if !required(auth, guard) || authorized(presented, &auth.tokens) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

async fn guard(state: &AppState, guard: Guard, request: Request, next: Next) -> Response {
    match check(state, guard, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// Route layer of the execute and admin routes.
pub(super) async fn kernels(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    guard(&state, Guard::Kernels, request, next).await
}

/// Route layer of the health routes.
pub(super) async fn health(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    guard(&state, Guard::Health, request, next).await
}

/// Route layer of `/metrics`.
pub(super) async fn metrics(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    guard(&state, Guard::Metrics, request, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        let tokens = vec![
            "0123456789abcdef".to_owned(),
            "fedcba9876543210xx".to_owned(),
        ];
        assert!(authorized(Some(b"Bearer 0123456789abcdef"), &tokens));
        assert!(authorized(Some(b"Bearer fedcba9876543210xx"), &tokens));
        assert!(!authorized(Some(b"Bearer 0123456789abcdeF"), &tokens));
        assert!(!authorized(Some(b"Bearer 0123456789abcde"), &tokens));
        assert!(authorized(Some(b"bearer 0123456789abcdef"), &tokens));
        assert!(authorized(Some(b"BEARER 0123456789abcdef"), &tokens));
        assert!(!authorized(Some(b"Basic 0123456789abcdef"), &tokens));
        assert!(!authorized(Some(b"Bearer0123456789abcdef"), &tokens));
        assert!(!authorized(Some(b"0123456789abcdef"), &tokens));
        assert!(!authorized(None, &tokens));
        assert!(!authorized(Some(b"Bearer "), &[]));
    }
}
