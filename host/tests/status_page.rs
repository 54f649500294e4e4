//! The status page over real HTTP: `/` and `/status` serve the page, `/status.json` what it
//! shows (kernels with their breakers and calls, the health components, readiness). The page
//! in a real browser is checked by scripts/observability-check.py (headless Chromium).
#![allow(clippy::indexing_slicing, clippy::panic)] // tests index JSON they checked and fail loudly

mod common;

use std::time::Duration;

use common::{CYCLE, start, wait_until};
use rustkernel_host::kernels::PAGERANK;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_from_the_binary_and_reads_status_json() {
    let server = start("").await;
    for path in ["/", "/status"] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{path}: {answer:?}"
        );
        assert!(answer.body.contains("<title>rustkernel status</title>"));
        assert!(
            answer.body.contains("fetch(\"status.json\""),
            "it polls the JSON"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_shows_calls_latency_and_an_open_breaker_with_its_reason() {
    let server = start("").await;
    for _ in 0..3 {
        assert_eq!(server.execute(PAGERANK, CYCLE).await.status, 200);
    }
    let answer = server
        .post("/v1/admin/kernels/graph/pagerank/force-open", Vec::new())
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(server.execute(PAGERANK, CYCLE).await.status, 503);

    wait_until(
        "the page's JSON shows it",
        Duration::from_secs(5),
        || async {
            let status = server.get("/status.json").await.json();
            let kernel = status["health"]["components"]
                .as_array()
                .and_then(|all| all.iter().find(|c| c["name"] == "kernel/graph/pagerank"))
                .cloned()
                .unwrap_or_default();
            kernel["breaker"]["state"] == "forced_open"
                && kernel["breaker"]["trip"]["reason"] == "forced"
        },
    )
    .await;
    let status = server.get("/status.json").await.json();
    let pagerank = status["kernels"]
        .as_array()
        .and_then(|all| all.iter().find(|k| k["kernel"] == PAGERANK))
        .cloned()
        .expect("every kernel is listed");
    assert_eq!(pagerank["calls"], 4, "{pagerank}");
    let outcomes = pagerank["outcomes"].to_string();
    assert!(
        outcomes.contains("[\"success\",3]") && outcomes.contains("[\"rejected\",1]"),
        "{outcomes}"
    );
    assert!(
        pagerank["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{pagerank}"
    );
    assert!(pagerank["mean_ms"].as_f64().is_some(), "{pagerank}");
    assert_eq!(status["health"]["ready"], true, "the other kernel serves");
    assert!(status["gpu"].is_null(), "no [gpu]: {status}");
}
