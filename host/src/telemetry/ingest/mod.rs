//! `rustkernel serve --telemetry SOURCE`: the service reads edge controllers' telemetry and
//! shows the fleet in `/health` and `/metrics`.
//!
//! # What a device becomes
//! A stream's [`Hello`](TelemetryFrame::Hello) frame names the device (its id as 8 hex digits,
//! `0a386001`); the frames after it on that stream are the device's. Each of its components
//! (named by its [`Component`](TelemetryFrame::Component) frame, or by its number when that frame
//! was missed) is a health component `edge/<device>/<component>`: non-critical unless the device
//! is listed in `critical_devices`, so an edge device never takes the service out of readiness
//! by default. `rustkernel health --component edge/0a386001/accelerator` shows one.
//!
//! Its status:
//! - `unknown` until the device reports the component's health;
//! - then the status the device reports, at least `degraded` after an escalation (the message
//!   names the last escalation and when it arrived: `escalated to notify_operator at
//!   2025-06-01T12:00:00Z`), with the breaker's state in the message while it is not closed;
//! - `unknown` again when the device sent nothing for `unknown_after` (default 30 s), and
//!   `unhealthy` after `unhealthy_after` (default 2 min), with how long it has been silent;
//! - a new `Hello` from the device (it restarted) clears its escalations and statuses.
//!
//! # Wire versions
//! The host reads every wire version the project has shipped (`READ_VERSIONS` of
//! `rustkernel_core::telemetry`), each into the same model, so a fleet can be upgraded one
//! device at a time. A device whose firmware is newer than the host is still seen: the hello's
//! layout is the same in every version, so it joins, and it shows in `/health` as the component
//! `edge/<device>` (and its components, if it had any) `degraded` with the message `firmware
//! newer than host (version N)`, silent or not like any device. Its other frames are counted as
//! `result="unsupported_version"` and skipped, and logged once per device (and version).
//!
//! The checks run on the service's health probe; they answer from what was ingested, and the
//! ingest asks for a check as soon as something changed, so `/health` follows the device
//! without waiting for the next round. While a component is `unknown` its check waits (for
//! news from the device, or for the `unhealthy_after` deadline), which keeps it `unknown` in
//! between; its round therefore is `unhealthy_after - unknown_after` plus a second.
//!
//! # Metrics
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `rustkernel_edge_frames_total` | counter | `source`, `result` (`ok`, `bad`, `no_hello`: before any hello on the stream, `refused`: from a refused device, `unsupported_version`: a whole frame of a wire version the host does not read) |
//! | `rustkernel_edge_devices` | gauge | |
//! | `rustkernel_edge_devices_silent` | gauge | (devices that sent nothing for `unknown_after`: silent, then lost) |
//! | `rustkernel_edge_devices_refused_total` | counter | |
//! | `rustkernel_edge_components_refused_total` | counter | |
//! | `rustkernel_edge_last_frame_timestamp_seconds` | gauge (Unix time) | `device` |
//! | `rustkernel_edge_breaker_transitions_total` | counter | `device`, `component`, `from`, `to` |
//! | `rustkernel_edge_restarts_total` | counter | `device`, `component` |
//! | `rustkernel_edge_escalations_total` | counter | `device`, `component`, `strategy` |
//! | `rustkernel_edge_operator_notified_timestamp_seconds` | gauge (Unix time) | `device`, `component` |
//! | `rustkernel_edge_job_outcomes_total` | counter | `device`, `outcome` (`done`, `fallback`, `failed`) |
//! | `rustkernel_edge_reported` | gauge | `device`, `counter` (the device's own totals from its last summary frame: `restarts`, `escalations`, `breaker_opens`, ...) |
//! | `rustkernel_edge_connections` | gauge | `source` (TCP: connections open) |
//! | `rustkernel_edge_connections_closed_total` | counter | `source`, `reason` (`refused`: `max_connections` open, none from its address; `replaced`: a newer connection from its address took its slot; `idle`: silent for `idle_timeout`) |
//!
//! # Bounds
//! Bad input never stops the service: a bad frame is counted (`result="bad"`) and skipped. A
//! stream keeps at most one line ([`MAX_LINE_LEN`](super::MAX_LINE_LEN)) or one raw frame, a TCP
//! source at most `max_connections` streams (a connection that finds them taken replaces the
//! quietest from its address, or is closed at once; a connection silent for `idle_timeout`,
//! default 5 min, is closed: counted and logged, so no idle peer holds a slot forever), the
//! service at most `max_devices` devices (a hello from one more is refused: logged, counted in
//! `rustkernel_edge_devices_refused_total`, and its frames skipped) and each device at most
//! `max_components_per_device` components. The health probe holds 64 components in all; a
//! component that finds it full is refused the same way. Devices and components are never
//! forgotten while the service runs (the probe cannot unregister), which the bounds keep finite.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustkernel_core::resilience::health::NAME_CAPACITY;
use rustkernel_core::resilience::recovery::{RecoveryAction, RecoveryStrategy};
use rustkernel_core::resilience::{
    CircuitState, Criticality, HealthCheckResult, HealthProbeConfig, HealthStatus, ProbeRole,
    ProbeRoles,
};
use rustkernel_core::resilience::{Silence, SilencePhase};
use rustkernel_core::telemetry::{self, JobOutcome, Summary, TelemetryError, TelemetryFrame};
use rustkernel_tokio::clock;
use rustkernel_tokio::resilience::{ComponentOptions, HealthProbe, check_fn};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::BadFrame;
use super::scan::{FrameScanner, Scanned};
use super::source::{SourceFraming, SourceKind, TelemetryConfig, TelemetrySource};

mod metrics;
mod streams;
mod tcp;
mod verdicts;
mod versions;

pub use metrics::*;
pub use streams::{FOLLOW_INTERVAL, read_stream, start};
use verdicts::{Followup, PushState};

/// The most bytes a stream's read takes at once.
const READ_CHUNK: usize = 8 * 1024;

// ----- the fleet -----

#[derive(Debug)]
struct Component {
    /// `edge/<device>/<name>`.
    full: String,
    /// The status the device reported last, if any.
    status: Option<HealthStatus>,
    breaker: CircuitState,
    /// The last escalation and when it arrived.
    escalation: Option<(RecoveryStrategy, SystemTime)>,
    /// Pushes of its state to the probe.
    push: Arc<PushState>,
}

#[derive(Debug)]
struct Device {
    label: String,
    /// How long it has been quiet: talking, silent (`unknown_after`: its components turn
    /// unknown), lost (`unhealthy_after`: unhealthy). The core's machine, on tokio's clock.
    silence: Silence,
    last_frame_wall: SystemTime,
    /// Component numbers to names, from component frames.
    names: HashMap<u8, String>,
    /// Tracked components by name; the device's own component, while its firmware is (or
    /// was) newer than the host, under [`DEVICE_COMPONENT`](versions::DEVICE_COMPONENT).
    components: BTreeMap<String, Component>,
    critical: bool,
    /// The wire version its last hello named.
    version: u8,
    /// The last version whose unreadable frames were logged (once per device and version).
    logged_version: Option<u8>,
}

#[derive(Debug, Default)]
struct Fleet {
    devices: BTreeMap<u32, Device>,
}

/// What a stream knows between frames: the device its last hello named.
#[derive(Debug)]
pub struct StreamContext {
    source: String,
    device: Option<u32>,
    refused: bool,
}

impl StreamContext {
    /// A stream of `source` (the metrics' `source` label) before any hello.
    #[must_use]
    pub fn new(source: &str) -> Self {
        Self {
            source: source.to_owned(),
            device: None,
            refused: false,
        }
    }
}

/// The ingested state of every edge device, and the settings it is kept with.
#[derive(Debug)]
pub struct EdgeFleet {
    config: TelemetryConfig,
    probe: HealthProbe,
    metrics: EdgeMetrics,
    fleet: Mutex<Fleet>,
    changed: Notify,
    weak: Weak<EdgeFleet>,
    listeners: Mutex<Vec<(TelemetrySource, SocketAddr)>>,
}

impl EdgeFleet {
    /// A fleet with no device yet, reporting to `probe` and `metrics`.
    #[must_use]
    pub fn new(config: TelemetryConfig, probe: HealthProbe, metrics: EdgeMetrics) -> Arc<Self> {
        Arc::new_cyclic(|weak| Self {
            config,
            probe,
            metrics,
            fleet: Mutex::new(Fleet::default()),
            changed: Notify::new(),
            weak: weak.clone(),
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// The addresses the TCP sources listen on (a port 0 resolved), once started.
    #[must_use]
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.listeners)
            .iter()
            .map(|(_, address)| *address)
            .collect()
    }

    /// The ids of the devices tracked, as 8 hex digits.
    #[must_use]
    pub fn devices(&self) -> Vec<String> {
        lock(&self.fleet)
            .devices
            .values()
            .map(|device| device.label.clone())
            .collect()
    }

    /// Applies one scanned item of a stream.
    pub fn ingest(&self, stream: &mut StreamContext, item: Scanned) {
        let frame = match item {
            Ok(frame) => frame,
            Err(BadFrame::Frame(TelemetryError::UnsupportedVersion(version))) => {
                self.unsupported(stream, version);
                return;
            }
            Err(bad) => {
                tracing::debug!(source = %stream.source, %bad, "bad telemetry frame skipped");
                self.count(stream, "bad");
                return;
            }
        };
        if let TelemetryFrame::Hello {
            device, version, ..
        } = frame
        {
            self.hello(stream, device, version);
            return;
        }
        if stream.refused {
            self.count(stream, "refused");
            return;
        }
        let Some(id) = stream.device else {
            self.count(stream, "no_hello");
            return;
        };
        self.count(stream, "ok");
        let mut followup = Followup::default();
        {
            let mut fleet = lock(&self.fleet);
            let Some(device) = fleet.devices.get_mut(&id) else {
                return;
            };
            self.heard(device, &mut followup);
            self.apply(device, frame, &mut followup);
        }
        self.follow_up(followup);
    }

    fn count(&self, stream: &StreamContext, result: &'static str) {
        self.metrics
            .frames
            .get_or_create(&FrameLabels {
                source: stream.source.clone(),
                result,
            })
            .inc();
    }

    /// A hello: the stream's frames are this device's from now on.
    fn hello(&self, stream: &mut StreamContext, id: u32, version: u8) {
        let mut followup = Followup::default();
        let refused = {
            let mut fleet = lock(&self.fleet);
            let tracked = fleet.devices.len();
            match fleet.devices.get_mut(&id) {
                Some(device) => {
                    // The device restarted: what it reported before no longer holds.
                    self.heard(device, &mut followup);
                    for component in device.components.values_mut() {
                        component.status = None;
                        component.escalation = None;
                        component.breaker = CircuitState::Closed;
                        followup.reset.push(component.full.clone());
                    }
                    self.firmware(device, version, &mut followup);
                    false
                }
                None if tracked >= self.config.max_devices => true,
                None => {
                    let mut device = Device {
                        label: format!("{id:08x}"),
                        silence: Silence::new(self.config.silence(), clock::now()),
                        last_frame_wall: SystemTime::now(),
                        names: HashMap::new(),
                        components: BTreeMap::new(),
                        critical: self.config.critical_devices.contains(&id),
                        version,
                        logged_version: None,
                    };
                    tracing::info!(device = %device.label, version, source = %stream.source, "edge device joined");
                    self.set_last_frame(&device);
                    self.firmware(&mut device, version, &mut followup);
                    fleet.devices.insert(id, device);
                    self.metrics
                        .devices
                        .set(i64::try_from(fleet.devices.len()).unwrap_or(i64::MAX));
                    false
                }
            }
        };
        stream.device = Some(id);
        stream.refused = refused;
        if refused {
            self.metrics.devices_refused.inc();
            self.count(stream, "refused");
            tracing::warn!(
                device = %format_args!("{id:08x}"),
                source = %stream.source,
                max_devices = self.config.max_devices,
                "edge device refused: max_devices are tracked; its frames are skipped"
            );
        } else {
            self.count(stream, "ok");
        }
        self.follow_up(followup);
    }

    /// Sets `rustkernel_edge_devices_silent` to the devices that are not talking.
    fn count_silent(&self, fleet: &Fleet) {
        let silent = fleet
            .devices
            .values()
            .filter(|device| device.silence.phase() != SilencePhase::Talking)
            .count();
        self.metrics
            .devices_silent
            .set(i64::try_from(silent).unwrap_or(i64::MAX));
    }

    /// A frame arrived from `device` now.
    fn heard(&self, device: &mut Device, followup: &mut Followup) {
        device.last_frame_wall = SystemTime::now();
        self.set_last_frame(device);
        if device.silence.on_heard(clock::now()).is_some() {
            // It was counted silent when it turned so (`count_silent`, under the same lock).
            self.metrics.devices_silent.dec();
            tracing::info!(device = %device.label, "edge device talks again");
            for component in device.components.values() {
                followup.check(component);
            }
        }
    }

    fn set_last_frame(&self, device: &Device) {
        let unix = device
            .last_frame_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.metrics
            .last_frame
            .get_or_create(&DeviceLabels {
                device: device.label.clone(),
            })
            .set(unix);
    }

    fn apply(&self, device: &mut Device, frame: TelemetryFrame, followup: &mut Followup) {
        match frame {
            TelemetryFrame::Hello { .. } => {}
            TelemetryFrame::Component { id, name } => {
                let name = sanitize(&name, device.label.len());
                device.names.insert(id, name);
                self.component(device, id);
            }
            TelemetryFrame::Health {
                component, status, ..
            } => {
                if let Some(component) = self.component(device, component) {
                    component.status = Some(status);
                    if status == HealthStatus::Unknown {
                        followup.reset.push(component.full.clone());
                    } else {
                        followup.check(component);
                    }
                }
            }
            TelemetryFrame::Breaker {
                component,
                transition,
                ..
            } => {
                let label = device.label.clone();
                if let Some((name, component)) = self.named_component(device, component) {
                    self.metrics
                        .breaker_transitions
                        .get_or_create(&EdgeTransitionLabels {
                            device: label,
                            component: name,
                            from: transition.from.label(),
                            to: transition.to.label(),
                        })
                        .inc();
                    component.breaker = transition.to;
                    followup.check(component);
                }
            }
            TelemetryFrame::Recovery {
                component, action, ..
            } => {
                let label = device.label.clone();
                if let Some((name, component)) = self.named_component(device, component) {
                    let labels = EdgeComponentLabels {
                        device: label,
                        component: name,
                    };
                    self.recovery(&labels, component, action);
                    followup.check(component);
                }
            }
            TelemetryFrame::Job { outcome, .. } => {
                let outcome = match outcome {
                    JobOutcome::Done => "done",
                    JobOutcome::Fallback => "fallback",
                    JobOutcome::Failed(_) => "failed",
                };
                self.metrics
                    .job_outcomes
                    .get_or_create(&EdgeJobLabels {
                        device: device.label.clone(),
                        outcome,
                    })
                    .inc();
            }
            TelemetryFrame::Summary(summary) => self.summary(&device.label, &summary),
        }
    }

    fn recovery(
        &self,
        labels: &EdgeComponentLabels,
        component: &mut Component,
        action: RecoveryAction,
    ) {
        let now = SystemTime::now();
        let notify = |strategy: RecoveryStrategy| {
            if strategy == RecoveryStrategy::NotifyOperator {
                let unix = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                self.metrics
                    .operator_notified
                    .get_or_create(labels)
                    .set(unix);
                tracing::warn!(
                    device = %labels.device,
                    component = %labels.component,
                    "edge component asks for an operator"
                );
            }
        };
        match action {
            RecoveryAction::Restart { .. } => {
                self.metrics.restarts.get_or_create(labels).inc();
            }
            RecoveryAction::Escalate(strategy) => {
                self.metrics
                    .escalations
                    .get_or_create(&EdgeEscalationLabels {
                        device: labels.device.clone(),
                        component: labels.component.clone(),
                        strategy: strategy.as_str(),
                    })
                    .inc();
                component.escalation = Some((strategy, now));
                notify(strategy);
            }
            RecoveryAction::NotifyOperator => {
                component.escalation = Some((RecoveryStrategy::NotifyOperator, now));
                notify(RecoveryStrategy::NotifyOperator);
            }
            _ => {}
        }
    }

    fn summary(&self, device: &str, summary: &Summary) {
        let fields = [
            ("jobs_ok", summary.jobs_ok),
            ("fallbacks", summary.fallbacks),
            ("jobs_failed", summary.jobs_failed),
            ("retries", summary.retries),
            ("breaker_opens", summary.breaker_opens),
            ("half_open_probes", summary.half_open_probes),
            ("breaker_closes", summary.breaker_closes),
            ("rejected", summary.rejected),
            ("health_changes", summary.health_changes),
            ("restarts", summary.restarts),
            ("escalations", summary.escalations),
        ];
        for (counter, value) in fields {
            self.metrics
                .reported
                .get_or_create(&ReportedLabels {
                    device: device.to_owned(),
                    counter,
                })
                .set(i64::from(value));
        }
    }

    /// The tracked component numbered `id`, registering it on first sight.
    fn component<'d>(&self, device: &'d mut Device, id: u8) -> Option<&'d mut Component> {
        self.named_component(device, id)
            .map(|(_, component)| component)
    }

    fn named_component<'d>(
        &self,
        device: &'d mut Device,
        id: u8,
    ) -> Option<(String, &'d mut Component)> {
        let name = device
            .names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string());
        if !device.components.contains_key(&name) {
            let full = format!("edge/{}/{name}", device.label);
            let own = device
                .components
                .keys()
                .filter(|key| key.as_str() != versions::DEVICE_COMPONENT)
                .count();
            if own >= self.config.max_components_per_device {
                self.metrics.components_refused.inc();
                tracing::warn!(
                    component = %full,
                    max = self.config.max_components_per_device,
                    "edge component refused: the device has max_components_per_device"
                );
                // Remember the refusal under the name so it is logged once.
                return None;
            }
            self.register(&full, device.label.clone(), &name, device.critical)?;
            device.components.insert(
                name.clone(),
                Component {
                    full,
                    status: None,
                    breaker: CircuitState::Closed,
                    escalation: None,
                    push: Arc::new(PushState::default()),
                },
            );
        }
        let component = device.components.get_mut(&name)?;
        Some((name, component))
    }

    /// Registers `full` in the health probe; `None` (logged, counted) when the probe refuses.
    fn register(&self, full: &str, device: String, name: &str, critical: bool) -> Option<()> {
        let weak = self.weak.clone();
        let key = (device, name.to_owned());
        let window = self.check_window();
        let registered = self.probe.try_register_with(
            full,
            check_fn(move || {
                let fleet = weak.upgrade();
                let key = key.clone();
                async move {
                    match fleet {
                        Some(fleet) => fleet.check(&key.0, &key.1).await,
                        None => HealthCheckResult::unhealthy("telemetry ingest stopped"),
                    }
                }
            }),
            ComponentOptions {
                criticality: if critical {
                    Criticality::Critical
                } else {
                    Criticality::NonCritical
                },
                roles: ProbeRoles::of(&[ProbeRole::Liveness, ProbeRole::Readiness]),
                config: Some(HealthProbeConfig {
                    interval: window,
                    timeout: window,
                    failure_threshold: 1,
                    success_threshold: 1,
                }),
            },
        );
        match registered {
            Ok(_) => {
                tracing::info!(component = full, critical, "edge component registered");
                Some(())
            }
            Err(error) => {
                self.metrics.components_refused.inc();
                tracing::warn!(component = full, %error, "edge component refused by the health probe");
                None
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A device's component name as a health component name part: letters, digits, `_`, `-` and
/// `.` kept, anything else `_`, cut so `edge/<device>/<name>` fits the probe's names.
fn sanitize(name: &str, device_len: usize) -> String {
    let room = NAME_CAPACITY.saturating_sub("edge//".len() + device_len);
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(room)
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustkernel_core::resilience::health::ComponentName;
    use rustkernel_core::resilience::{CircuitState, Transition};
    use rustkernel_core::telemetry::BreakerCounts;

    const DEVICE: u32 = 0x0a38_6001;

    fn fleet(config: TelemetryConfig) -> (Arc<EdgeFleet>, HealthProbe) {
        let probe = HealthProbe::new(HealthProbeConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            failure_threshold: 1,
            success_threshold: 1,
        });
        let fleet = EdgeFleet::new(config, probe.clone(), EdgeMetrics::default());
        (fleet, probe)
    }

    fn config() -> TelemetryConfig {
        TelemetryConfig {
            unknown_after: Duration::from_secs(10),
            unhealthy_after: Duration::from_secs(30),
            ..TelemetryConfig::default()
        }
    }

    fn name(text: &str) -> ComponentName {
        let mut name = ComponentName::new();
        name.push_str(text).expect("fits");
        name
    }

    fn feed(fleet: &EdgeFleet, stream: &mut StreamContext, frames: &[TelemetryFrame]) {
        for frame in frames {
            fleet.ingest(stream, Ok(frame.clone()));
        }
    }

    fn hello(device: u32) -> TelemetryFrame {
        TelemetryFrame::Hello {
            version: 1,
            device,
            at_us: 0,
        }
    }

    fn health(status: HealthStatus) -> TelemetryFrame {
        TelemetryFrame::Health {
            component: 0,
            status,
            at_us: 1,
        }
    }

    fn status(probe: &HealthProbe, component: &str) -> (HealthStatus, String) {
        let report = probe.report();
        let line = report.component(component).expect("registered");
        (line.status, line.message.clone())
    }

    /// Lets spawned checks and the runner catch up (virtual time).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_device_turns_unknown_then_unhealthy_and_recovers_when_it_talks() {
        let (fleet, probe) = fleet(config());
        let _runner = probe.spawn();
        let _tasks = start(&fleet, async {}).await.expect("no sources to bind");
        let mut stream = StreamContext::new("test");
        let npu = "edge/0a386001/npu";
        feed(
            &fleet,
            &mut stream,
            &[
                hello(DEVICE),
                TelemetryFrame::Component {
                    id: 0,
                    name: name("npu"),
                },
            ],
        );
        settle().await;
        assert_eq!(
            status(&probe, npu).0,
            HealthStatus::Unknown,
            "nothing reported yet"
        );
        feed(&fleet, &mut stream, &[health(HealthStatus::Healthy)]);
        settle().await;
        assert_eq!(status(&probe, npu), (HealthStatus::Healthy, String::new()));
        assert_eq!(fleet.metrics.devices_silent.get(), 0, "talking");

        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(status(&probe, npu).0, HealthStatus::Unknown, "silent 11 s");
        assert_eq!(fleet.metrics.devices_silent.get(), 1, "silent 11 s");
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(status(&probe, npu).0, HealthStatus::Unknown, "silent 26 s");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (now, message) = status(&probe, npu);
        assert_eq!(now, HealthStatus::Unhealthy, "silent 31 s: {message}");
        assert!(
            message.starts_with("silent 3") && message.contains("s since 20"),
            "{message}"
        );
        assert!(probe.report().ready, "an edge device is not critical");
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(status(&probe, npu).0, HealthStatus::Unhealthy);
        assert_eq!(
            fleet.metrics.devices_silent.get(),
            1,
            "lost is still silent"
        );

        feed(&fleet, &mut stream, &[health(HealthStatus::Degraded)]);
        settle().await;
        assert_eq!(status(&probe, npu).0, HealthStatus::Degraded, "talks again");
        assert_eq!(fleet.metrics.devices_silent.get(), 0, "talks again");
    }

    #[tokio::test(start_paused = true)]
    async fn escalations_restarts_and_breakers_show_in_health_and_metrics() {
        let (fleet, probe) = fleet(config());
        let _runner = probe.spawn();
        let mut stream = StreamContext::new("test");
        let open = Transition::new(CircuitState::Closed, CircuitState::Open);
        feed(
            &fleet,
            &mut stream,
            &[
                hello(DEVICE),
                TelemetryFrame::Component {
                    id: 0,
                    name: name("npu"),
                },
                health(HealthStatus::Healthy),
                TelemetryFrame::Breaker {
                    component: 0,
                    transition: open,
                    counts: BreakerCounts::default(),
                    at_us: 2,
                },
            ],
        );
        settle().await;
        assert_eq!(
            status(&probe, "edge/0a386001/npu"),
            (HealthStatus::Healthy, "breaker open".to_owned())
        );
        feed(
            &fleet,
            &mut stream,
            &[
                TelemetryFrame::Recovery {
                    component: 0,
                    action: RecoveryAction::Restart {
                        at: rustkernel_core::time::Instant::ZERO,
                        attempt: 1,
                    },
                    at_us: 3,
                },
                TelemetryFrame::Recovery {
                    component: 0,
                    action: RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator),
                    at_us: 4,
                },
            ],
        );
        settle().await;
        let (now, message) = status(&probe, "edge/0a386001/npu");
        assert_eq!(
            now,
            HealthStatus::Degraded,
            "an escalation degrades at least"
        );
        assert!(
            message.starts_with("escalated to notify_operator at 20"),
            "{message}"
        );
        let labels = EdgeComponentLabels {
            device: "0a386001".into(),
            component: "npu".into(),
        };
        assert_eq!(fleet.metrics.restarts.get_or_create(&labels).get(), 1);
        assert!(fleet.metrics.operator_notified.get_or_create(&labels).get() > 1.0e9);
        let escalations = EdgeEscalationLabels {
            device: "0a386001".into(),
            component: "npu".into(),
            strategy: "notify_operator",
        };
        assert_eq!(
            fleet.metrics.escalations.get_or_create(&escalations).get(),
            1
        );
        let transitions = EdgeTransitionLabels {
            device: "0a386001".into(),
            component: "npu".into(),
            from: "closed",
            to: "open",
        };
        assert_eq!(
            fleet
                .metrics
                .breaker_transitions
                .get_or_create(&transitions)
                .get(),
            1
        );

        // The device restarts: its escalation is forgotten, its components unknown again.
        feed(&fleet, &mut stream, &[hello(DEVICE)]);
        settle().await;
        assert_eq!(status(&probe, "edge/0a386001/npu").0, HealthStatus::Unknown);
        feed(&fleet, &mut stream, &[health(HealthStatus::Healthy)]);
        settle().await;
        assert_eq!(
            status(&probe, "edge/0a386001/npu"),
            (HealthStatus::Healthy, String::new())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn devices_and_components_over_the_bounds_are_refused_and_counted() {
        let (fleet, probe) = fleet(TelemetryConfig {
            max_devices: 1,
            max_components_per_device: 2,
            ..config()
        });
        let mut first = StreamContext::new("a");
        let mut second = StreamContext::new("b");
        let frames: Vec<TelemetryFrame> = (0..5u8)
            .map(|id| TelemetryFrame::Health {
                component: id,
                status: HealthStatus::Healthy,
                at_us: 0,
            })
            .collect();
        feed(&fleet, &mut first, &[hello(1)]);
        feed(&fleet, &mut first, &frames);
        feed(&fleet, &mut second, &[hello(2)]);
        feed(&fleet, &mut second, &frames);
        assert_eq!(fleet.devices(), vec!["00000001".to_owned()]);
        assert_eq!(fleet.metrics.devices_refused.get(), 1);
        assert_eq!(fleet.metrics.components_refused.get(), 3);
        let count = |source: &str, result| {
            fleet
                .metrics
                .frames
                .get_or_create(&FrameLabels {
                    source: source.into(),
                    result,
                })
                .get()
        };
        assert_eq!(count("a", "ok"), 6);
        assert_eq!(count("b", "refused"), 6);
        assert_eq!(
            probe.components(),
            vec!["edge/00000001/0".to_owned(), "edge/00000001/1".to_owned()]
        );
        // Frames before any hello are skipped and counted.
        let mut third = StreamContext::new("c");
        feed(&fleet, &mut third, &frames);
        assert_eq!(count("c", "no_hello"), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_newer_than_the_host_is_seen_and_its_other_frames_counted() {
        let (fleet, probe) = fleet(config());
        let _runner = probe.spawn();
        let _tasks = start(&fleet, async {}).await.expect("no sources to bind");
        let mut stream = StreamContext::new("test");
        let newer = telemetry::VERSION + 1;
        let count = |result| {
            fleet
                .metrics
                .frames
                .get_or_create(&FrameLabels {
                    source: "test".into(),
                    result,
                })
                .get()
        };
        let unreadable = || Err(BadFrame::Frame(TelemetryError::UnsupportedVersion(newer)));
        let newer_message = format!("firmware newer than host (version {newer})");
        feed(
            &fleet,
            &mut stream,
            &[
                hello(DEVICE),
                TelemetryFrame::Component {
                    id: 0,
                    name: name("npu"),
                },
                health(HealthStatus::Healthy),
            ],
        );
        settle().await;
        assert_eq!(
            status(&probe, "edge/0a386001/npu"),
            (HealthStatus::Healthy, String::new())
        );

        // Upgraded: its hello still reads, the rest does not.
        let upgraded = TelemetryFrame::Hello {
            version: newer,
            device: DEVICE,
            at_us: 0,
        };
        fleet.ingest(&mut stream, Ok(upgraded));
        for _ in 0..3 {
            fleet.ingest(&mut stream, unreadable());
        }
        settle().await;
        for component in ["edge/0a386001", "edge/0a386001/npu"] {
            assert_eq!(
                status(&probe, component),
                (HealthStatus::Degraded, newer_message.clone()),
                "{component}"
            );
        }
        assert_eq!((count("ok"), count("unsupported_version")), (4, 3));
        assert_eq!(count("bad"), 0);
        assert!(probe.report().ready);

        // Its unreadable frames are still news from it: it does not turn silent...
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(8)).await;
            fleet.ingest(&mut stream, unreadable());
        }
        settle().await;
        assert_eq!(status(&probe, "edge/0a386001").1, newer_message);
        // ... until it is.
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(status(&probe, "edge/0a386001").0, HealthStatus::Unhealthy);

        // Reflashed with a version the host reads: its components report again.
        feed(
            &fleet,
            &mut stream,
            &[hello(DEVICE), health(HealthStatus::Healthy)],
        );
        settle().await;
        assert_eq!(
            status(&probe, "edge/0a386001"),
            (HealthStatus::Healthy, "firmware version 1".to_owned())
        );
        assert_eq!(
            status(&probe, "edge/0a386001/npu"),
            (HealthStatus::Healthy, String::new())
        );
        assert_eq!(fleet.devices(), vec!["0a386001".to_owned()]);
    }

    /// Frames of an unread version on a stream with no hello, or from a refused device, are
    /// counted as such and change no device.
    #[tokio::test(start_paused = true)]
    async fn unreadable_frames_before_a_hello_or_from_a_refused_device_are_only_counted() {
        let (fleet, probe) = fleet(TelemetryConfig {
            max_devices: 1,
            ..config()
        });
        let unreadable = || Err(BadFrame::Frame(TelemetryError::UnsupportedVersion(9)));
        let mut first = StreamContext::new("a");
        fleet.ingest(&mut first, unreadable());
        feed(&fleet, &mut first, &[hello(1)]);
        let mut second = StreamContext::new("b");
        feed(&fleet, &mut second, &[hello(2)]);
        fleet.ingest(&mut second, unreadable());
        let count = |source: &str, result| {
            fleet
                .metrics
                .frames
                .get_or_create(&FrameLabels {
                    source: source.into(),
                    result,
                })
                .get()
        };
        assert_eq!(count("a", "unsupported_version"), 1);
        assert_eq!(count("b", "unsupported_version"), 1);
        assert_eq!(fleet.devices(), vec!["00000001".to_owned()]);
        assert!(probe.components().is_empty());
    }

    #[test]
    fn component_names_are_cleaned_and_fit_the_probe() {
        assert_eq!(sanitize("accelerator", 8), "accelerator");
        assert_eq!(sanitize("a b/c\n\u{1b}[2J", 8), "a_b_c___2J");
        assert_eq!(sanitize("", 8), "_");
        let long = sanitize(&"x".repeat(40), 8);
        assert_eq!(format!("edge/00000000/{long}").len(), NAME_CAPACITY);
    }
}
