//! The clients host: a readiness prober (as a load balancer would run it), clients that send
//! kernel requests with deadlines to the real router over turmoil's TCP (bursts included, and
//! some that hang up mid-request), and, at the end, a scrape of `/metrics`.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustkernel_host::kernels::{self, KernelRequest};
use rustkernel_host::service::execute::TIMEOUT_HEADER;

use crate::plan::{self, Rand, Shape, Stream};
use crate::record::{HostClock, Outcome, Probe, Request, Shared};
use crate::worker::AbortOnDrop;
use crate::{ANSWER_GRACE, PORT, SERVICE};

/// Concurrent clients.
const CLIENTS: u32 = 4;
/// How long a client waits past the deadline (and the grace) before it calls the request
/// unanswered.
const PATIENCE: Duration = Duration::from_secs(5);
/// The least a deadline leaves beyond the request's CPU cost: the time the service needs to
/// notice a silent worker ([`GpuConfig::stall_after`]) and some slack. Every request has at
/// least this much, so the CPU can always serve it in time.
///
/// [`GpuConfig::stall_after`]: rustkernel_host::gpu::GpuConfig::stall_after
pub(crate) const FEASIBLE_MARGIN: Duration = Duration::from_millis(450);

/// What the clients host needs.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub(crate) seed: u64,
    pub(crate) rand: Rand,
    pub(crate) shape: Shape,
    pub(crate) record: Shared,
}

/// A response, or why none came.
async fn http(
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    let stream = turmoil::net::TcpStream::connect((SERVICE, PORT))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let _connection = AbortOnDrop(tokio::task::spawn_local(connection));
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", SERVICE);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

impl Clients {
    /// Runs the host: probes until the service is ready, then traffic until the shape's end,
    /// waits for the last answers, scrapes `/metrics`.
    pub(crate) async fn run(self) -> turmoil::Result {
        let clock = HostClock::start();
        // The clients start when the service does: the service host, polled first, has set
        // the moment; the loop is only a fallback.
        let launched = loop {
            if let Some(at) = self.record.lock().launched_at {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        clock.sleep_until(launched).await;
        // Every time in the record counts from here.
        let clock = HostClock::start();
        // Readiness is probed every second from the start.
        let prober = AbortOnDrop(tokio::task::spawn_local(probe(self.record.clone(), clock)));
        loop {
            let ready = self
                .record
                .lock()
                .probes
                .iter()
                .any(|p| p.status == Some(200));
            if ready || clock.now() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let holds = AbortOnDrop(tokio::task::spawn_local(hold_network(
            Rand::new(self.seed, Stream::Holds),
            self.shape,
            self.record.clone(),
            clock,
        )));
        let end = clock.now() + self.shape.traffic;
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            clients.push(tokio::task::spawn_local(
                self.clone().client(client, clock, end),
            ));
        }
        for client in clients {
            let _ = client.await;
        }
        drop(prober);
        drop(holds);
        let metrics = http("GET", "/metrics", &[], Bytes::new()).await;
        self.record.lock().metrics = metrics
            .ok()
            .map(|(_, body)| String::from_utf8_lossy(&body).into_owned());
        Ok(())
    }

    /// One client: requests at seeded gaps, sometimes a burst, until `end`; then waits for
    /// its requests' answers.
    async fn client(self, client: u32, clock: HostClock, end: Duration) {
        let mut requests = Vec::new();
        while clock.now() < end {
            let gap = self.rand.between(Duration::ZERO, self.shape.mean_gap * 2);
            tokio::time::sleep(gap).await;
            let burst = if self.rand.chance(0.03) {
                self.rand.int(5, 15)
            } else {
                1
            };
            for _ in 0..burst {
                let (id, request, body) = self.draw_request();
                requests.push(tokio::task::spawn_local(
                    self.clone().send(client, clock, id, request, body),
                ));
            }
        }
        for request in requests {
            let _ = request.await;
        }
    }

    /// A random valid request: PageRank on a small random graph, or a small matmul.
    fn draw_request(&self) -> (u64, KernelRequest, Bytes) {
        let id = {
            let record = self.record.lock();
            u64::try_from(record.requests.len()).unwrap_or(u64::MAX)
        };
        let (kernel, body) = if self.rand.chance(0.6) {
            let nodes = self.rand.int(4, 64);
            let edges: Vec<[u32; 2]> = (0..nodes * 2)
                .map(|_| [self.rand.int(0, nodes - 1), self.rand.int(0, nodes - 1)])
                .collect();
            let body = serde_json::json!({
                "num_nodes": nodes,
                "edges": edges,
                "max_iterations": self.rand.int(5, 30),
            });
            (kernels::PAGERANK, body)
        } else {
            let n = self.rand.int(2, 16);
            let cells =
                |r: &Rand| -> Vec<f64> { (0..n * n).map(|_| f64::from(r.int(0, 9))).collect() };
            let body =
                serde_json::json!({ "n": n, "a": cells(&self.rand), "b": cells(&self.rand) });
            (kernels::MATMUL, body)
        };
        let body = Bytes::from(body.to_string());
        let request = kernels::parse_request(kernel, &body)
            .unwrap_or_else(|e| unreachable!("the simulation drew an invalid request: {e}"));
        // Reserve the id (the record's index) now, in draw order.
        self.record.lock().requests.push(Request {
            id,
            kernel,
            sent_at: Duration::ZERO,
            deadline: Duration::ZERO,
            cpu_cost: plan::cpu_cost(&request),
            outcome: None,
        });
        (id, request, body)
    }

    async fn send(
        self,
        client: u32,
        clock: HostClock,
        id: u64,
        request: KernelRequest,
        body: Bytes,
    ) {
        let cpu = plan::cpu_cost(&request);
        let extra = self
            .rand
            .between(Duration::ZERO, Duration::from_millis(2500));
        let deadline_ms = (cpu + FEASIBLE_MARGIN + extra).as_millis().max(1);
        let deadline = Duration::from_millis(u64::try_from(deadline_ms).unwrap_or(u64::MAX));
        let hang_up = self
            .rand
            .chance(0.05)
            .then(|| self.rand.between(Duration::ZERO, deadline));
        let kernel = request.kernel_id();
        let sent_at = clock.now();
        if let Some(slot) = self
            .record
            .lock()
            .requests
            .get_mut(usize::try_from(id).unwrap_or(usize::MAX))
        {
            slot.sent_at = sent_at;
            slot.deadline = deadline;
        }
        self.record.event(
            sent_at,
            format!(
                "client {client}: request {id} {kernel} deadline {deadline:?} cpu {cpu:?}{}",
                hang_up.map_or_else(String::new, |d| format!(", hangs up after {d:?}"))
            ),
        );
        let path = format!("/v1/kernels/{kernel}/execute");
        let headers = [(TIMEOUT_HEADER, deadline.as_millis().to_string())];
        let exchange = http("POST", &path, &headers, body);
        let patience = hang_up.unwrap_or(deadline + ANSWER_GRACE + PATIENCE);
        let outcome = match tokio::time::timeout(patience, exchange).await {
            Err(_) if hang_up.is_some() => Outcome::Disconnected(clock.now() - sent_at),
            Err(_) => Outcome::NoAnswer(format!("nothing within {patience:?}")),
            Ok(Err(why)) => Outcome::NoAnswer(why),
            Ok(Ok((status, body))) => {
                let backend = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["backend"].as_str().map(str::to_owned));
                Outcome::Answered {
                    status,
                    backend,
                    elapsed: clock.now() - sent_at,
                }
            }
        };
        self.record.event(
            clock.now(),
            format!("client {client}: request {id} -> {outcome:?}"),
        );
        if let Some(slot) = self
            .record
            .lock()
            .requests
            .get_mut(usize::try_from(id).unwrap_or(usize::MAX))
        {
            slot.outcome = Some(outcome);
        }
    }
}

/// Holds every message between the clients and the service now and then, until the faults
/// stop: from 20 ms to 2 s, a few times a minute (a stalled link, a garbage-collecting proxy).
async fn hold_network(rand: Rand, shape: Shape, record: Shared, clock: HostClock) {
    loop {
        let gap = rand.between(Duration::from_secs(2), Duration::from_secs(40));
        tokio::time::sleep(gap).await;
        let start = clock.now();
        if start >= shape.faults_until {
            return;
        }
        let held = rand.between(Duration::from_millis(20), Duration::from_secs(2));
        record.event(
            start,
            format!("network: clients <-> service held for {held:?}"),
        );
        turmoil::hold("clients", SERVICE);
        tokio::time::sleep(held).await;
        turmoil::release("clients", SERVICE);
        let end = clock.now();
        record.lock().holds.push((start, end));
        record.event(end, "network: released");
    }
}

/// Probes `/health/ready` every second, each with a second to answer.
async fn probe(record: Shared, clock: HostClock) {
    let mut last = None;
    loop {
        let at = clock.now();
        let status = tokio::time::timeout(
            Duration::from_secs(1),
            http("GET", "/health/ready", &[], Bytes::new()),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|(status, _)| status);
        if status != last {
            record.event(at, format!("ready probe: {status:?}"));
            last = status;
        }
        record.lock().probes.push(Probe { at, status });
        let next = at + Duration::from_secs(1);
        tokio::time::sleep(next.saturating_sub(clock.now())).await;
    }
}
