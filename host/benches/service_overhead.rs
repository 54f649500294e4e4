//! The service's own cost per kernel request over the bare kernel, on the small PageRank input
//! (`{"num_nodes":3,"edges":[[0,1],[1,2],[2,0]]}`).
//!
//! Four figures, one request at a time:
//! - `kernel/run_cpu`: the bare kernel on an already parsed request;
//! - `kernel/json_and_run`: parse and validate the JSON body, run, serialize the answer (the
//!   JSON work the service adds, with no HTTP, pipeline or pool);
//! - `http/get_live`: a full loopback round trip of `GET /health/live` to the real service
//!   started in-process: the floor of any request (client, loopback TCP, hyper, routing);
//! - `http/post_pagerank`: a full loopback round trip of
//!   `POST /v1/kernels/graph/pagerank/execute`.
//!
//! The client is a minimal blocking HTTP/1.1 client on one keep-alive connection (one
//! `write`, reads until the `Content-Length` is in), so its own cost is a few system calls.
//! The service's cost per kernel request beyond the HTTP floor is
//! `post_pagerank - get_live - run_cpu` (pipeline, blocking-pool hop, JSON, metrics);
//! `post_pagerank - run_cpu` is the whole cost including HTTP and the client.
//! `scripts/loadbench.sh` runs this bench and writes the figures to `docs/loadbench.md`.
//!
//! The service runs as `rustkernel serve` runs it on a 2-core machine: a multi-threaded tokio
//! runtime with 2 workers, the rate limit off.
//!
//! `cargo bench -p rustkernel-host --bench service_overhead`

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // a bench fails loudly
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use criterion::{Criterion, criterion_group, criterion_main};
use rustkernel_host::config::ConfigFile;
use rustkernel_host::kernels::{self, PAGERANK};

const BODY: &str = r#"{"num_nodes":3,"edges":[[0,1],[1,2],[2,0]]}"#;

/// The load-test configuration: loopback (no tokens), rate limit off, concurrency unbounded in
/// practice.
const CONFIG: &str = r#"
[server]
address = "127.0.0.1:0"
[limits]
per_client_rate = 0
max_concurrency = 100000
"#;

/// A minimal HTTP/1.1 client on one keep-alive connection.
struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    fn connect(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buffer: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends `request` (complete, with its headers) and reads the whole answer; returns the
    /// status code.
    fn round_trip(&mut self, request: &[u8]) -> u16 {
        self.stream.write_all(request).unwrap();
        self.buffer.clear();
        let mut chunk = [0_u8; 8192];
        let mut wanted: Option<usize> = None;
        loop {
            if let Some(total) = wanted
                && self.buffer.len() >= total
            {
                break;
            }
            let read = self.stream.read(&mut chunk).unwrap();
            assert!(read > 0, "the service closed the connection");
            self.buffer.extend_from_slice(&chunk[..read]);
            if wanted.is_none()
                && let Some(end) = find(&self.buffer, b"\r\n\r\n")
            {
                wanted = Some(end + 4 + content_length(&self.buffer[..end]));
            }
        }
        let status = std::str::from_utf8(&self.buffer[9..12]).unwrap();
        status.parse().unwrap()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn content_length(head: &[u8]) -> usize {
    let head = std::str::from_utf8(head).unwrap();
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a Content-Length header")
}

fn bench(c: &mut Criterion) {
    let request = kernels::parse_request(PAGERANK, BODY.as_bytes()).unwrap();
    let mut group = c.benchmark_group("service_overhead");
    group.bench_function("kernel/run_cpu", |b| {
        b.iter(|| kernels::run_cpu(black_box(&request), &|| false).unwrap());
    });
    group.bench_function("kernel/json_and_run", |b| {
        b.iter(|| {
            let request = kernels::parse_request(PAGERANK, black_box(BODY.as_bytes())).unwrap();
            let response = kernels::run_cpu(&request, &|| false).unwrap();
            serde_json::to_vec(&response).unwrap()
        });
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ConfigFile::parse(CONFIG).unwrap().resolve(None).unwrap();
    let running = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        rustkernel_host::service::start_on(config, listener)
            .await
            .unwrap()
    });
    let address = running.local_addr();
    let live = b"GET /health/live HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec();
    let post = format!(
        "POST /v1/kernels/graph/pagerank/execute HTTP/1.1\r\nHost: bench\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
    .into_bytes();
    let mut client = Client::connect(address);
    assert_eq!(client.round_trip(&live), 200, "GET /health/live");
    assert_eq!(client.round_trip(&post), 200, "POST pagerank");

    group.bench_function("http/get_live", |b| {
        b.iter(|| client.round_trip(black_box(&live)));
    });
    group.bench_function("http/post_pagerank", |b| {
        b.iter(|| client.round_trip(black_box(&post)));
    });
    group.finish();
    drop(client);
    runtime.block_on(running.shutdown()).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
