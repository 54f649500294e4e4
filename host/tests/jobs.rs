//! Jobs over HTTP: submit, watch, cancel and list on a real server with a real jobs directory;
//! then the service as a real process, killed with SIGKILL mid-job and started again on the
//! same directory, a damaged newest checkpoint, a cancel of a running job, and two services
//! sharing one directory.
#![allow(clippy::indexing_slicing, clippy::panic)] // tests index JSON they checked and fail loudly

mod common;

use std::time::Duration;

use common::{Server, TempDir, send, start};
use serde_json::{Value, json};

/// A jobs section over `dir` that scans often, so tests wait little.
fn jobs_toml(dir: &TempDir, extra: &str) -> String {
    format!(
        "[jobs]\ndir = {:?}\nscan_interval = \"50ms\"\n{extra}",
        dir.path().join("jobs").display().to_string()
    )
}

/// A PageRank input of `nodes` nodes on a ring with chords that runs `iterations` iterations.
fn ring(nodes: u32, iterations: u32) -> Value {
    let mut edges = Vec::new();
    for node in 0..nodes {
        edges.push([node, (node + 1) % nodes]);
        edges.push([node, (node * 7 + 3) % nodes]);
    }
    json!({"num_nodes": nodes, "edges": edges, "max_iterations": iterations, "tolerance": 0.0})
}

fn job(input: &Value, every: u32) -> String {
    json!({"kernel": "graph/pagerank", "input": input, "checkpoint": {"iterations": every}})
        .to_string()
}

/// `GET /v1/jobs/{id}`, which must answer 200.
async fn job_status(server: &Server, id: &str) -> Value {
    let answer = server.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()
}

/// Polls the job until `holds` (a real server: the wait is on its socket).
async fn wait_job(server: &Server, id: &str, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = job_status(server, id).await;
        if holds(&status) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state_is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |status| status["state"] == state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_http_from_submit_to_result() {
    let dir = TempDir::new("jobs-http");
    let server = start(&jobs_toml(&dir, "")).await;
    let input = ring(50, 40);

    let submitted = server.post("/v1/jobs", job(&input, 10)).await;
    assert_eq!(submitted.status, 202, "{submitted:?}");
    let body = submitted.json();
    let id = body["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        submitted.header("location").as_deref(),
        Some(format!("/v1/jobs/{id}").as_str())
    );
    assert_eq!(body["state"], "queued");
    assert_eq!(body["progress"]["max_iterations"], 40);

    let done = wait_job(&server, &id, "it succeeded", state_is("succeeded")).await;
    assert_eq!(done["progress"]["iterations_done"], 40);
    assert_eq!(done["checkpoints_written"], 3, "{done}");
    assert_eq!(done["last_checkpoint"]["iteration"], 30);
    assert_eq!(done["resumes"], 0);
    // The same answer as the synchronous route's.
    let direct = server
        .execute("graph/pagerank", &input.to_string())
        .await
        .json();
    assert_eq!(done["result"], direct["result"]);

    let page = server.get("/v1/jobs?limit=10").await;
    assert_eq!(page.status, 200, "{page:?}");
    let page = page.json();
    assert_eq!(page["jobs"][0]["id"], id.as_str());
    assert_eq!(page["next"], Value::Null);
    assert_eq!(
        page["jobs"][0].get("result"),
        None,
        "lists carry no results"
    );

    // Over already: 409 with the service's error body.
    let again = send(
        server
            .client
            .delete(format!("{}/v1/jobs/{id}", server.base)),
    )
    .await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "conflict")
    );

    let metrics = server.metrics().await;
    assert!(
        common::sample(&metrics, "rustkernel_job_checkpoints_written_total", "").is_none(),
        "a family without labels is written without braces"
    );
    for family in [
        "rustkernel_job_checkpoints_written_total 3",
        "rustkernel_jobs_submitted_total 1",
        "rustkernel_job_resumes_total 0",
        "rustkernel_job_checkpoint_write_seconds_count 3",
    ] {
        assert!(
            metrics.contains(family),
            "{family} missing from:\n{metrics}"
        );
    }
    common::wait_until("the scan counted it", Duration::from_secs(10), || async {
        let metrics = server.metrics().await;
        common::sample(&metrics, "rustkernel_jobs", "state=\"succeeded\"") == Some(1.0)
            && metrics
                .lines()
                .find_map(|line| line.strip_prefix("rustkernel_jobs_disk_bytes "))
                .and_then(|value| value.parse::<f64>().ok())
                .is_some_and(|bytes| bytes > 0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_refused_at_submit() {
    let dir = TempDir::new("jobs-bad");
    let server = start(&jobs_toml(&dir, "")).await;
    let cases = [
        (
            json!({"kernel": "graph/pagerank", "input": {"num_nodes": 2, "edges": [[0, 5]]}}),
            "out of range",
        ),
        (
            json!({"kernel": "graph/pagerank", "input": {"num_nodes": 2, "edges": "x"}}),
            "input",
        ),
        (
            json!({"kernel": "linalg/matmul", "input": {"n": 1, "a": [1], "b": [1]}}),
            "not a job kernel",
        ),
        (
            json!({"kernel": "graph/nope", "input": {}}),
            "unknown kernel",
        ),
        (
            json!({"kernel": "graph/pagerank", "input": ring(3, 5), "deadline": "soon"}),
            "expected a duration",
        ),
        (
            json!({"kernel": "graph/pagerank", "input": ring(3, 5), "checkpoint": {}}),
            "checkpoint",
        ),
        (
            json!({"kernel": "graph/pagerank", "input": ring(3, 5), "extra": 1}),
            "extra",
        ),
    ];
    for (body, needle) in cases {
        let answer = server.post("/v1/jobs", body.to_string()).await;
        assert_eq!(answer.status, 400, "{body}: {answer:?}");
        assert_eq!(answer.error_code(), "bad_request");
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{needle}: {answer:?}"
        );
    }
    let not_json = server.post("/v1/jobs", "{").await;
    assert_eq!(not_json.status, 400);
    for path in ["/v1/jobs/0123-4567", "/v1/jobs/..%2Fetc", "/v1/jobs/NOPE"] {
        let answer = server.get(path).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (404, "not_found"),
            "{path}"
        );
    }
    let answer = send(
        server
            .client
            .delete(format!("{}/v1/jobs/0123-4567", server.base)),
    )
    .await;
    assert_eq!(answer.status, 404);
    for query in ["limit=0", "limit=5000", "after=..", "colour=red"] {
        let answer = server.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
    }
    let page = server.get("/v1/jobs").await.json();
    assert_eq!(page["jobs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_429_with_retry_after_and_a_running_job_cancels() {
    let dir = TempDir::new("jobs-full");
    let server = start(&jobs_toml(&dir, "max_running = 1\nmax_queued = 0")).await;
    let long = server.post("/v1/jobs", job(&ring(2000, 10_000), 50)).await;
    assert_eq!(long.status, 202, "{long:?}");
    let id = long.json()["id"].as_str().expect("id").to_owned();
    let full = server.post("/v1/jobs", job(&ring(3, 5), 1)).await;
    assert_eq!(
        (full.status, full.error_code().as_str()),
        (429, "shed"),
        "{full:?}"
    );
    assert!(
        full.header("retry-after")
            .is_some_and(|secs| secs.parse::<u64>().is_ok_and(|s| s >= 1))
    );

    let _ = wait_job(&server, &id, "it runs", state_is("running")).await;
    let cancel = send(
        server
            .client
            .delete(format!("{}/v1/jobs/{id}", server.base)),
    )
    .await;
    assert!(matches!(cancel.status, 200 | 202), "{cancel:?}");
    let cancelled = wait_job(&server, &id, "it is cancelled", state_is("cancelled")).await;
    assert!(
        cancelled["progress"]["iterations_done"]
            .as_u64()
            .expect("a number")
            < 10_000
    );
    assert!(cancelled["finished_at_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_need_the_token_and_are_off_without_a_dir() {
    let dir = TempDir::new("jobs-auth");
    let tokens = dir.write("tokens", "job-token-0123456789\n", 0o600);
    let server = start(&format!(
        "{}\n[auth]\ntoken_file = {:?}",
        jobs_toml(&dir, ""),
        tokens.display().to_string()
    ))
    .await;
    let body = job(&ring(3, 5), 1);
    let refused = server.post("/v1/jobs", body.clone()).await;
    assert_eq!(refused.status, 401);
    assert_eq!(server.get("/v1/jobs").await.status, 401);
    let accepted = send(
        server
            .post_builder("/v1/jobs", body)
            .header("authorization", "Bearer job-token-0123456789"),
    )
    .await;
    assert_eq!(accepted.status, 202, "{accepted:?}");

    let off = start("").await;
    let answer = off.post("/v1/jobs", job(&ring(3, 5), 1)).await;
    assert_eq!(answer.status, 404);
    assert!(answer.body.contains("[jobs] dir"), "{answer:?}");
}

/// `rustkernel jobs ...` against `server`, with its exit code, stdout and stderr.
async fn cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["jobs", "--url", server.base.as_str()];
    all.extend_from_slice(args);
    let output = common::run_cli_async(&all).await;
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_submits_waits_lists_and_cancels_with_its_exit_codes() {
    let dir = TempDir::new("jobs-cli");
    let server = start(&jobs_toml(&dir, "")).await;
    let input = dir.write("input.json", &ring(40, 30).to_string(), 0o600);
    let input = input.to_str().expect("UTF-8");

    let (code, out, err) = cli(
        &server,
        &[
            "submit",
            "--input",
            input,
            "--checkpoint-every",
            "5",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let submitted: Value = serde_json::from_str(&out).expect("JSON");
    let id = submitted["id"].as_str().expect("an id").to_owned();
    assert_eq!(submitted["checkpoint_every"]["iterations"], 5);

    // Not a terminal: plain progress lines on stderr, the job on stdout, 0 for success.
    let (code, out, err) = cli(&server, &["wait", &id, "--poll", "20ms"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("state       succeeded"), "{out}");
    assert!(out.contains("progress    30/30 iterations (100%)"), "{out}");
    assert!(err.lines().any(|line| line.starts_with(&id)), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no terminal codes off a terminal: {err:?}"
    );

    let (code, out, _) = cli(&server, &["status", &id, "--format", "json"]).await;
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["result"]["page_rank"]["iterations"], 30, "{status}");

    let (code, out, _) = cli(&server, &["list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|line| line.starts_with(&id) && line.contains("succeeded")),
        "{out}"
    );

    // Over already: refused, 6. Unknown: 4. Nobody there: 3.
    assert_eq!(cli(&server, &["cancel", &id]).await.0, 6);
    assert_eq!(cli(&server, &["status", "0123-4567"]).await.0, 4);
    assert_eq!(cli(&server, &["status", "../etc"]).await.0, 4);
    let nobody = format!("http://127.0.0.1:{}", common::free_port());
    let output = common::run_cli_async(&["jobs", "--url", &nobody, "list"]).await;
    assert_eq!(output.status.code(), Some(3));

    // A job past its deadline fails: `submit --wait` exits 1.
    let (code, out, _) = cli(
        &server,
        &["submit", "--input", input, "--deadline", "1ns", "--wait"],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the job's deadline passed"), "{out}");

    // A cancelled job: `wait` exits 5.
    let long = dir.write("long.json", &ring(2000, 10_000).to_string(), 0o600);
    let (code, out, err) = cli(
        &server,
        &[
            "submit",
            "--input",
            long.to_str().expect("UTF-8"),
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let long_id = serde_json::from_str::<Value>(&out).expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let _ = wait_job(&server, &long_id, "it runs", state_is("running")).await;
    assert_eq!(cli(&server, &["cancel", &long_id]).await.0, 0);
    assert_eq!(
        cli(&server, &["wait", &long_id, "--poll", "20ms"]).await.0,
        5
    );
    // Bad input: refused before anything runs.
    let bad = dir.write("bad.json", "{\"num_nodes\": 0, \"edges\": []}", 0o600);
    let (code, _, err) = cli(
        &server,
        &["submit", "--input", bad.to_str().expect("UTF-8")],
    )
    .await;
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("HTTP 400") && err.contains("empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_the_gpu_worker_goes_on_when_the_worker_dies_mid_chunk() {
    let dir = TempDir::new("jobs-gpu");
    let worker = env!("CARGO_BIN_EXE_rustkernel-worker");
    // The worker on its CPU backend, dying (half a reply, then exit) on its third request.
    let server = start(&format!(
        "{}\n[gpu]\nenabled = true\nworker = {worker:?}\nbackend = \"cpu\"\nheartbeat_interval = \"50ms\"\nrestart_delay = \"50ms\"\nfault = {{ kind = \"crash\", on_request = 3 }}",
        jobs_toml(&dir, "")
    ))
    .await;
    common::wait_until("the worker serves", Duration::from_secs(20), || async {
        let health = server.health().await;
        common::component(&health, "gpu")["status"] == "healthy"
    })
    .await;
    let input = ring(3000, 200);
    let submitted = server.post("/v1/jobs", job(&input, 20)).await;
    assert_eq!(submitted.status, 202, "{submitted:?}");
    let id = submitted.json()["id"].as_str().expect("an id").to_owned();
    let done = wait_job(&server, &id, "it succeeded", state_is("succeeded")).await;
    // Ten chunks, each answered with its checkpoint: the first two by the worker, the third
    // lost with it and run again on the CPU from checkpoint 40, the rest by whichever path
    // was up. Nine checkpoints written (the tenth answer is the result).
    assert_eq!(done["checkpoints_written"], 9, "{done}");
    assert_eq!(
        done["result"],
        uninterrupted(&input),
        "the bits of an uninterrupted run"
    );
    let metrics = server.metrics().await;
    let gpu_calls = |outcome: &str| {
        common::sample(
            &metrics,
            "rustkernel_circuit_breaker_calls_total",
            &format!("breaker=\"gpu0\",outcome=\"{outcome}\""),
        )
        .unwrap_or(0.0)
    };
    assert!(
        gpu_calls("success") >= 2.0,
        "the worker answered chunks:\n{metrics}"
    );
    assert!(
        gpu_calls("failure") >= 1.0,
        "the worker died on one:\n{metrics}"
    );
    common::wait_until(
        "the worker was replaced",
        Duration::from_secs(20),
        || async {
            server
                .running
                .state()
                .gpu()
                .is_some_and(|gpu| gpu.workers_started() >= 2)
        },
    )
    .await;
}

// ----- The service as a real process -----

/// The tests below start real services and run PageRanks that take seconds: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `rustkernel serve` on 127.0.0.1:0 with the jobs directory `jobs`; its address.
fn serve(dir: &TempDir, name: &str, jobs: &std::path::Path) -> (common::ServeProcess, String) {
    let text = common::toml_with(&format!(
        "[server]\naddress = \"127.0.0.1:0\"\n[jobs]\ndir = {:?}\nscan_interval = \"100ms\"\nmax_running = 1",
        jobs.display().to_string()
    ));
    let config = dir.write(&format!("{name}.toml"), &text, 0o600);
    let mut process = common::ServeProcess::spawn(&["--config", config.to_str().expect("UTF-8")]);
    let address = process.listening_address(Duration::from_secs(20));
    (process, format!("http://{address}"))
}

/// `GET {base}/v1/jobs/{id}` from a real client.
async fn get_job(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let answer = send(client.get(format!("{base}/v1/jobs/{id}"))).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()
}

/// Polls until `holds`, failing with the service's log after 60 s.
async fn poll_job(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    process: &mut common::ServeProcess,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("{base}/v1/jobs/{id}")).send().await
            && response.status() == 200
            && let Ok(status) = response.json::<Value>().await
            && holds(&status)
        {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out; the service's log:\n{}",
            process.drain_log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The sequences of the checkpoint files in a job's directory, ascending.
fn checkpoints_on_disk(job_dir: &std::path::Path) -> Vec<u64> {
    let mut sequences: Vec<u64> = std::fs::read_dir(job_dir)
        .expect("the job's directory")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".ckpt")?.split_once('-')?.1.parse().ok()
        })
        .collect();
    sequences.sort_unstable();
    sequences
}

/// The answer JSON of `input` run uninterrupted in this process, through the same JSON
/// writer and reader as the service's answer.
fn uninterrupted(input: &Value) -> Value {
    let request = rustkernel_host::kernels::parse_request(
        rustkernel_host::kernels::PAGERANK,
        input.to_string().as_bytes(),
    )
    .expect("valid");
    let result = rustkernel_host::kernels::run_cpu(&request, &|| false).expect("runs");
    serde_json::from_str(&serde_json::to_string(&result).expect("writes")).expect("reads")
}

fn iteration(status: &Value, field: &str) -> u64 {
    status["last_checkpoint"][field].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_job_twice_resumes_from_checkpoints_and_ends_as_an_uninterrupted_run() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = TempDir::new("jobs-kill");
    let jobs = dir.path().join("jobs");
    let client = common::client();
    // About 3 ms an iteration in a debug build: seconds in all, a checkpoint every 20.
    let input = ring(50_000, 1500);
    let every = 20;
    let (mut first, base) = serve(&dir, "first", &jobs);
    let submitted = send(
        client
            .post(format!("{base}/v1/jobs"))
            .header("content-type", "application/json")
            .body(job(&input, every)),
    )
    .await;
    assert_eq!(submitted.status, 202, "{submitted:?}");
    let id = submitted.json()["id"].as_str().expect("an id").to_owned();
    let job_dir = jobs.join(&id);

    // Kill 1: SIGKILL once a few checkpoints are written.
    let seen = poll_job(&client, &base, &id, &mut first, |status| {
        iteration(status, "iteration") >= 3 * u64::from(every)
    })
    .await;
    first.child.kill().expect("SIGKILL");
    let _ = first.wait_exit(Duration::from_secs(10));
    let on_disk = checkpoints_on_disk(&job_dir);
    let newest = *on_disk.last().expect("checkpoints");
    assert!(
        on_disk.len() <= 2 + 1,
        "two good ones kept (and at most one being pruned): {on_disk:?}"
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(job_dir.join("job.json")).expect("the record"))
            .expect("JSON");
    assert_eq!(
        record["state"], "running",
        "SIGKILL leaves it running for the next service"
    );

    let (mut second, base) = serve(&dir, "second", &jobs);
    let resumed = poll_job(&client, &base, &id, &mut second, |status| {
        status["resumes"] == 1
    })
    .await;
    assert_eq!(
        resumed["resumed_from"], newest,
        "the newest checkpoint: {resumed}"
    );
    let repeated_1 = seen["progress"]["iterations_done"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(newest);
    eprintln!(
        "kill 1: iteration {} reached before the SIGKILL, newest checkpoint on disk {newest}, resumed from it: {repeated_1} iterations or more repeated (at most one interval of {every}, plus those run between the last look and the kill)",
        seen["progress"]["iterations_done"]
    );

    // Kill 2, then a flipped byte in the newest checkpoint: the one before is used.
    let seen = poll_job(&client, &base, &id, &mut second, |status| {
        iteration(status, "iteration") >= newest + 3 * u64::from(every)
    })
    .await;
    second.child.kill().expect("SIGKILL");
    let _ = second.wait_exit(Duration::from_secs(10));
    let on_disk = checkpoints_on_disk(&job_dir);
    let (before, newest) = match on_disk.as_slice() {
        [.., before, newest] => (*before, *newest),
        other => panic!("two checkpoints expected: {other:?}"),
    };
    let path = job_dir.join(format!("4a4f4253-{newest:020}.ckpt"));
    let mut bytes = std::fs::read(&path).expect("the newest checkpoint");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).expect("damaged");

    let (mut third, base) = serve(&dir, "third", &jobs);
    let resumed = poll_job(&client, &base, &id, &mut third, |status| {
        status["resumes"] == 2
    })
    .await;
    assert_eq!(
        resumed["resumed_from"], before,
        "fell back past the damaged {newest}: {resumed}"
    );
    assert_eq!(
        resumed["skipped_checkpoints"][0]["sequence"], newest,
        "{resumed}"
    );
    eprintln!(
        "kill 2: last seen at iteration {}, newest checkpoint {newest} damaged, resumed from {before}",
        seen["progress"]["iterations_done"]
    );

    let done = poll_job(&client, &base, &id, &mut third, |status| {
        status["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{}", third.drain_log());
    assert_eq!(done["progress"]["iterations_done"], 1500);
    assert_eq!(
        done["result"],
        uninterrupted(&input),
        "the same bits as a run never killed"
    );
    let metrics = send(client.get(format!("{base}/metrics"))).await.body;
    assert!(
        metrics.contains("rustkernel_job_resumes_total 1"),
        "{metrics}"
    );
    let figure = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let (sum, count) = (
        figure("rustkernel_job_checkpoint_write_seconds_sum"),
        figure("rustkernel_job_checkpoint_write_seconds_count"),
    );
    let (started, finished) = (
        done["started_at_ms"].as_u64().unwrap_or(0),
        done["finished_at_ms"].as_u64().unwrap_or(0),
    );
    eprintln!(
        "checkpoint cost: {} bytes each ({} nodes), written in {:.2} ms on average over the last service's {count} writes; {} checkpoints and {} resumes in all; {} ms from the job's first start to its end, two crashes and restarts included",
        done["last_checkpoint"]["bytes"],
        input["num_nodes"],
        sum / count * 1000.0,
        done["checkpoints_written"],
        done["resumes"],
        finished.saturating_sub(started)
    );
    third.terminate();
    assert_eq!(
        third
            .wait_exit(Duration::from_secs(20))
            .map(|status| status.code()),
        Some(Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_one_directory_run_a_job_once_and_the_other_takes_over_when_it_dies() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = TempDir::new("jobs-two");
    let jobs = dir.path().join("jobs");
    let client = common::client();
    let (mut a, base_a) = serve(&dir, "a", &jobs);
    let (mut b, base_b) = serve(&dir, "b", &jobs);
    let input = ring(50_000, 600);
    let submitted = send(
        client
            .post(format!("{base_a}/v1/jobs"))
            .header("content-type", "application/json")
            .body(job(&input, 20)),
    )
    .await;
    assert_eq!(submitted.status, 202, "{submitted:?}");
    let id = submitted.json()["id"].as_str().expect("an id").to_owned();

    // Either may run it; both answer for it.
    let running = poll_job(&client, &base_b, &id, &mut b, |status| {
        iteration(status, "iteration") >= 40
    })
    .await;
    let runner = running["runner"].as_str().expect("a runner").to_owned();
    let (owner, other, other_base) = if runner.ends_with(&format!(":{}", a.child.id())) {
        (&mut a, &mut b, base_b.clone())
    } else {
        assert!(runner.ends_with(&format!(":{}", b.child.id())), "{runner}");
        (&mut b, &mut a, base_a.clone())
    };
    assert_eq!(
        get_job(&client, &other_base, &id).await["runner"],
        runner.as_str()
    );
    assert_eq!(
        running["resumes"], 0,
        "the other service never started it: {running}"
    );

    owner.child.kill().expect("SIGKILL");
    let _ = owner.wait_exit(Duration::from_secs(10));
    let done = poll_job(&client, &other_base, &id, other, |status| {
        status["state"] == "succeeded"
    })
    .await;
    assert_eq!(done["resumes"], 1, "{done}");
    assert_ne!(done["runner"], runner.as_str(), "the survivor finished it");
    assert_eq!(done["result"], uninterrupted(&input));
    let started = other.drain_log().matches("job started").count();
    assert_eq!(
        started, 1,
        "the survivor started it once, after the owner died"
    );
}
