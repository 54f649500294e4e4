//! A client that carries its deadline to the server it calls, and a server that works within
//! it: the client's remaining time goes in the `x-request-timeout-ms` header (the header the
//! `rustkernel` service reads), the server turns it into its own [`DeadlineContext`] and
//! answers `504` when the work would outlive it, instead of working on for a client that has
//! given up.
//!
//! The client is `reqwest` (already in the workspace's lock file: the host and its tests use
//! it); the server is axum on 127.0.0.1 on a port the system picks. Both run in this process;
//! it checks what it sees and exits 0.
//!
//! ```text
//! cargo run -p rustkernel-tokio --features axum --example deadline_client
//! ```

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rustkernel_tokio::axum::HttpError;
use rustkernel_tokio::resilience::{Classify, DeadlineContext, current_deadline};

/// The header that carries the caller's remaining time, in whole milliseconds.
const TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// What the server did: work finished, and work cut by the caller's deadline.
#[derive(Debug, Default)]
struct Counts {
    finished: AtomicU32,
    cut: AtomicU32,
}

#[derive(Debug)]
struct WorkError;

impl fmt::Display for WorkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("work failed")
    }
}

impl Error for WorkError {}

impl Classify for WorkError {}

impl IntoResponse for WorkError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// The server's side: `GET /v1/work/{ms}` works for `ms` milliseconds, within the caller's
/// deadline when the request carries one (5 s otherwise).
async fn work(
    State(counts): State<Arc<Counts>>,
    headers: HeaderMap,
    Path(ms): Path<u64>,
) -> Result<String, HttpError<WorkError>> {
    let remaining = headers
        .get(TIMEOUT_HEADER)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
        .map_or(Duration::from_secs(5), Duration::from_millis);
    // The caller's remaining time, on this machine's clock.
    let deadline = DeadlineContext::from_wire(remaining);
    let result = deadline
        .execute(|| {
            let counts = Arc::clone(&counts);
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                counts.finished.fetch_add(1, Ordering::SeqCst);
                Ok::<_, WorkError>(format!("worked {ms} ms of {} ms", remaining.as_millis()))
            }
        })
        .await;
    if result.is_err() {
        counts.cut.fetch_add(1, Ordering::SeqCst);
    }
    Ok(result?)
}

/// The client's side: a request that carries the current task's deadline
/// ([`current_deadline`], set by [`DeadlineContext::scope`]), and gives up at it too.
fn with_deadline(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current_deadline() {
        Some(deadline) => {
            let remaining = deadline.remaining();
            request
                .header(TIMEOUT_HEADER, remaining.as_millis().to_string())
                // The server answers by then; the client stops waiting a little after.
                .timeout(remaining + Duration::from_millis(200))
        }
        None => request,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tokio::time::timeout(Duration::from_secs(8), run())
        .await
        .map_err(|_| "the example took more than 8 s")?
}

async fn run() -> Result<(), Box<dyn Error>> {
    let counts = Arc::new(Counts::default());
    let router = Router::new()
        .route("/v1/work/{ms}", get(work))
        .with_state(Arc::clone(&counts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("serving on http://{address}");

    let client = reqwest::Client::new();
    // The client's whole operation has 400 ms: two calls share it.
    let deadline = DeadlineContext::new(Duration::from_millis(400));
    let started = tokio::time::Instant::now();
    let (first, second) = deadline
        .scope(async {
            let first = call(&client, address, "/v1/work/50").await;
            // 2 s of work cannot fit in what is left: the server stops at the deadline.
            let second = call(&client, address, "/v1/work/2000").await;
            (first, second)
        })
        .await;
    let (status, body) = first?;
    println!("first call -> {status} {body}");
    check(status == 200, "the short call fits")?;
    let (status, body) = second?;
    let took = started.elapsed();
    println!("second call -> {status} {body} (both calls took {took:?})");
    check(
        status == 504,
        "the long call is cut by the deadline it carried",
    )?;
    check(
        took < Duration::from_millis(900),
        "cut at the deadline, not after 2 s",
    )?;

    // The server finished the first work only; the second was dropped at the deadline.
    let (finished, cut) = (
        counts.finished.load(Ordering::SeqCst),
        counts.cut.load(Ordering::SeqCst),
    );
    println!("server: {finished} finished, {cut} cut");
    check(
        finished == 1 && cut == 1,
        "the server stopped working for the caller",
    )?;

    // Once the deadline has passed, the client does not call at all.
    let late = deadline.scope(async { current_deadline().map(DeadlineContext::check) });
    check(
        matches!(late.await, Some(Err(_))),
        "a passed deadline is not sent",
    )?;

    let _ = stop.send(());
    server.await??;
    println!("ok");
    Ok(())
}

async fn call(
    client: &reqwest::Client,
    address: SocketAddr,
    path: &str,
) -> Result<(u16, String), reqwest::Error> {
    let response = with_deadline(client.get(format!("http://{address}{path}")))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

fn check(holds: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if holds {
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}
