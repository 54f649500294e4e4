//! The floor `scripts/loadbench.sh` measures the service against: a bare axum server on the
//! same axum, tokio and kernels, with no resilience (no pipeline, breaker, deadline, health
//! registry, metrics, limits or auth). It answers the two routes the load benchmark drives:
//! `GET /health/ready` (a small JSON body) and `POST /v1/kernels/{family}/{name}/execute` (the
//! kernel parsed, run on the CPU and answered as the service does, inline as the service runs
//! a tiny kernel).
//!
//! ```sh
//! cargo run --release -p rustkernel-host --example floor -- 127.0.0.1:18081
//! ```

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rustkernel_host::kernels;

async fn ready() -> Response {
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "status": "ready" })),
    )
        .into_response()
}

async fn execute(Path((family, name)): Path<(String, String)>, body: Bytes) -> Response {
    let id = format!("{family}/{name}");
    let started = std::time::Instant::now();
    let request = match kernels::parse_request(&id, &body) {
        Ok(request) => request,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, error.to_string()).into_response();
        }
    };
    match kernels::run_cpu(&request, &|| false) {
        Ok(result) => Json(serde_json::json!({
            "kernel": id,
            "backend": "cpu",
            "attempts": 1,
            "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0,
            "result": result,
        }))
        .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned())
        .parse()
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    let app = Router::new()
        .route("/health/ready", get(ready))
        .route("/v1/kernels/{family}/{name}/execute", post(execute));
    let listener = tokio::net::TcpListener::bind(address).await?;
    eprintln!("floor listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
