//! One seed's world: the service host (the real service, its router, its GPU executor and
//! supervisor, behind the simulated worker transport and CPU) and the clients host, on
//! turmoil's simulated network and clocks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustkernel_host::config::ConfigFile;
use rustkernel_host::gpu::WorkerPhase;
use rustkernel_host::kernels::KERNEL_IDS;
use rustkernel_host::service::{self, AppState, Seams};

use crate::clients::Clients;
use crate::cpu::SimCpu;
use crate::plan::{Rand, Shape, Stream};
use crate::record::{HostClock, Record, Sample, Shared};
use crate::worker::{self, SimTransport};
use crate::{NETWORK_LATENCY, PORT, SERVICE, TICK};

/// The service's configuration in the simulation: the GPU path on (its defaults, with a
/// start-up timeout of 5 s), health checks every 100 ms, no rate limit (governor reads the
/// real clock), and a concurrency limit no burst reaches.
fn config() -> Result<rustkernel_host::config::ServiceConfig, String> {
    let text = "[gpu]\nenabled = true\nworker = \"/simulated/rustkernel-worker\"\nbackend = \"cpu\"\n\
        startup_timeout = \"5s\"\n\
        [limits]\nper_client_rate = 0\nmax_concurrency = 1024\n\
        [resilience.health_check]\ninterval = \"100ms\"\ntimeout = \"100ms\"\n";
    let mut config = ConfigFile::parse(text)
        .and_then(|file| file.resolve(None))
        .map_err(|e| e.to_string())?;
    if let Some(gpu) = &mut config.gpu {
        gpu.nvml = false;
    }
    Ok(config)
}

/// A turmoil listener as axum's.
struct SimListener(turmoil::net::TcpListener);

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok(accepted) = self.0.accept().await {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// When the service starts: the first moment, on the hosts' clocks, at which the core's clock
/// reads a whole minute (within the millisecond turmoil's clocks move by). The core counts
/// from an epoch that the first reading of the process fixed, and its windows' buckets are cut
/// at multiples of their length from that epoch: a run of a seed must meet the same cuts as
/// every other run of it. The clients host starts at the same moment (see
/// [`Clients::run`](crate::clients::Clients)), so the two hosts' timelines keep one phase.
fn launch_time(clock: HostClock) -> Duration {
    let now = rustkernel_tokio::clock::now().as_micros();
    let minute = 60_000_000;
    let wait = (minute - now % minute) % minute;
    clock.now() + Duration::from_millis(wait.div_ceil(1000))
}

/// The service host.
async fn serve(seed: u64, shape: Shape, record: Shared) -> turmoil::Result {
    let before = HostClock::start();
    let launched = launch_time(before);
    record.lock().launched_at = Some(launched);
    before.sleep_until(launched).await;
    // Every time in the record counts from here.
    let clock = HostClock::start();
    record.event(clock.now(), "service: start");
    let listener =
        turmoil::net::TcpListener::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT)).await?;
    let transport = SimTransport {
        rand: Rand::new(seed, Stream::Worker),
        shape,
        record: record.clone(),
        clock,
        faults_until: shape.faults_until,
    };
    let seams = Seams {
        worker_transport: Some(worker::transport(transport)),
        cpu: Some(Arc::new(SimCpu)),
    };
    let running = service::start_with(config()?, SimListener(listener), seams).await?;
    record.event(clock.now(), "service: listening");
    let state = Arc::clone(running.state());
    let mut last: Option<Sample> = None;
    loop {
        let mut sample = sample(&state);
        sample.at = clock.now();
        let changed = last.as_ref().is_none_or(|l| {
            l.kernel_breakers != sample.kernel_breakers
                || l.device_breaker != sample.device_breaker
                || l.phase != sample.phase
        });
        if changed {
            record.event(
                sample.at,
                format!(
                    "service: worker {}, device breaker {}, kernel breakers {:?}",
                    sample.phase, sample.device_breaker, sample.kernel_breakers
                ),
            );
            record.lock().samples.push(sample.clone());
            last = Some(sample);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The service's state now (`at` left for the caller).
fn sample(state: &AppState) -> Sample {
    let kernel_breakers = KERNEL_IDS
        .iter()
        .map(|id| {
            let breaker = state
                .breaker(id)
                .map_or_else(|| "none".to_owned(), |b| format!("{:?}", b.state()));
            (*id, breaker)
        })
        .collect();
    let (device_breaker, phase) = state.gpu().map_or_else(
        || ("none".to_owned(), "none".to_owned()),
        |gpu| {
            let phase = match gpu.phase() {
                WorkerPhase::Starting => "Starting",
                WorkerPhase::Ready { .. } => "Ready",
                WorkerPhase::Restarting { .. } => "Restarting",
                WorkerPhase::Unavailable { .. } => "Unavailable",
                WorkerPhase::Degraded { .. } => "Degraded",
                WorkerPhase::Off { .. } => "Off",
                _ => "Stopped",
            };
            let silent = if gpu.status().worker_silent {
                " (silent)"
            } else {
                ""
            };
            (
                format!("{:?}", gpu.breaker().state()),
                format!("{phase}{silent}"),
            )
        },
    );
    Sample {
        at: Duration::ZERO,
        kernel_breakers,
        device_breaker,
        phase,
    }
}

/// Runs one seed's world to its end and hands back its record.
///
/// # Errors
/// A host that failed (the service could not start), or turmoil's own error.
pub(crate) fn run(seed: u64, traffic: Duration) -> Result<(Record, Shape), String> {
    let shape = Shape::for_seed(seed, traffic);
    let record = Shared::default();
    let network = Rand::new(seed, Stream::Network);
    let mut sim = turmoil::Builder::new()
        .simulation_duration(traffic + Duration::from_secs(600))
        .tick_duration(TICK)
        // A fixed latency: turmoil draws each message's latency from its generator in the
        // order messages are sent within a step, and that order differed between two runs of
        // one seed (their traces parted by a millisecond here and there); with one latency
        // the runs agree.
        .min_message_latency(NETWORK_LATENCY)
        .max_message_latency(NETWORK_LATENCY)
        .rng_seed(network.next_u64())
        .build();
    let service_record = record.clone();
    sim.host(SERVICE, move || serve(seed, shape, service_record.clone()));
    let clients = Clients {
        seed,
        rand: Rand::new(seed, Stream::Clients),
        shape,
        record: record.clone(),
    };
    sim.client("clients", clients.run());
    let result = sim.run();
    drop(sim);
    let record = record.take();
    result.map_err(|e| e.to_string())?;
    Ok((record, shape))
}
