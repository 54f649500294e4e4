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
//! The checks run on the service's health probe; they answer from what was ingested, and the
//! ingest asks for a check as soon as something changed, so `/health` follows the device
//! without waiting for the next round. While a component is `unknown` its check waits (for
//! news from the device, or for the `unhealthy_after` deadline), which keeps it `unknown` in
//! between; its round therefore is `unhealthy_after - unknown_after` plus a second.
//!
//! # Metrics
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `rustkernel_edge_frames_total` | counter | `source`, `result` (`ok`, `bad`, `no_hello`: before any hello on the stream, `refused`: from a refused device) |
//! | `rustkernel_edge_devices` | gauge | |
//! | `rustkernel_edge_devices_refused_total` | counter | |
//! | `rustkernel_edge_components_refused_total` | counter | |
//! | `rustkernel_edge_last_frame_timestamp_seconds` | gauge (Unix time) | `device` |
//! | `rustkernel_edge_breaker_transitions_total` | counter | `device`, `component`, `from`, `to` |
//! | `rustkernel_edge_restarts_total` | counter | `device`, `component` |
//! | `rustkernel_edge_escalations_total` | counter | `device`, `component`, `strategy` |
//! | `rustkernel_edge_operator_notified_timestamp_seconds` | gauge (Unix time) | `device`, `component` |
//! | `rustkernel_edge_job_outcomes_total` | counter | `device`, `outcome` (`done`, `fallback`, `failed`) |
//! | `rustkernel_edge_reported` | gauge | `device`, `counter` (the device's own totals from its last summary frame: `restarts`, `escalations`, `breaker_opens`, ...) |
//!
//! # Bounds
//! Bad input never stops the service: a bad frame is counted (`result="bad"`) and skipped. A
//! stream keeps at most one line ([`MAX_LINE_LEN`](super::MAX_LINE_LEN)) or one raw frame, a TCP
//! source at most `max_connections` streams (more are closed at once, logged), the service at
//! most `max_devices` devices (a hello from one more is refused: logged, counted in
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
use rustkernel_core::telemetry::{JobOutcome, Summary, TelemetryFrame};
use rustkernel_tokio::resilience::{ComponentOptions, HealthProbe, check_fn};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::scan::{FrameScanner, Scanned};
use super::source::{SourceFraming, SourceKind, TelemetryConfig, TelemetrySource};

// ----- metrics -----

/// Labels of a source's frames.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameLabels {
    /// The source as written (`tcp://127.0.0.1:9000`, `file:/var/log/edge.log`, `-`).
    pub source: String,
    /// `ok`, `bad`, `no_hello` or `refused`.
    pub result: &'static str,
}

/// Labels of one device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabels {
    /// The device id, 8 hex digits.
    pub device: String,
}

/// Labels of one component of a device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeComponentLabels {
    /// The device id.
    pub device: String,
    /// The component's name on the device.
    pub component: String,
}

/// Labels of a breaker transition on a device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeTransitionLabels {
    /// The device id.
    pub device: String,
    /// The component the breaker guards.
    pub component: String,
    /// The state before.
    pub from: &'static str,
    /// The state after.
    pub to: &'static str,
}

/// Labels of an escalation on a device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeEscalationLabels {
    /// The device id.
    pub device: String,
    /// The component.
    pub component: String,
    /// The strategy escalated to (`degrade`, `notify_operator`, ...).
    pub strategy: &'static str,
}

/// Labels of a device's job outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeJobLabels {
    /// The device id.
    pub device: String,
    /// `done`, `fallback` or `failed`.
    pub outcome: &'static str,
}

/// Labels of a device's own totals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReportedLabels {
    /// The device id.
    pub device: String,
    /// The summary field (`restarts`, `breaker_opens`, ...).
    pub counter: &'static str,
}

type TimeGauge = Gauge<f64, AtomicU64>;

/// The `rustkernel_edge_*` families (see the [module](self) for the table).
#[derive(Clone, Debug, Default)]
pub struct EdgeMetrics {
    /// Frames by source and result.
    pub frames: Family<FrameLabels, Counter>,
    /// Devices tracked.
    pub devices: Gauge,
    /// Hellos refused because `max_devices` were tracked.
    pub devices_refused: Counter,
    /// Components refused (per-device bound, or the probe was full).
    pub components_refused: Counter,
    /// When each device last sent a frame (Unix seconds).
    pub last_frame: Family<DeviceLabels, TimeGauge>,
    /// Breaker transitions by device and component.
    pub breaker_transitions: Family<EdgeTransitionLabels, Counter>,
    /// Restarts by device and component.
    pub restarts: Family<EdgeComponentLabels, Counter>,
    /// Escalations by device, component and strategy.
    pub escalations: Family<EdgeEscalationLabels, Counter>,
    /// When an operator was last called for a component (Unix seconds).
    pub operator_notified: Family<EdgeComponentLabels, TimeGauge>,
    /// Job outcomes by device.
    pub job_outcomes: Family<EdgeJobLabels, Counter>,
    /// The device's own totals from its last summary frame.
    pub reported: Family<ReportedLabels, Gauge>,
}

impl EdgeMetrics {
    /// Registers every family in `registry` (under its prefix, `rustkernel_` in the service).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "edge_frames",
            "Telemetry frames ingested, by source and result",
            self.frames.clone(),
        );
        registry.register("edge_devices", "Edge devices tracked", self.devices.clone());
        registry.register(
            "edge_devices_refused",
            "Edge devices refused because max_devices were tracked",
            self.devices_refused.clone(),
        );
        registry.register(
            "edge_components_refused",
            "Edge components refused (per-device bound or health probe full)",
            self.components_refused.clone(),
        );
        registry.register(
            "edge_last_frame_timestamp_seconds",
            "When an edge device last sent a frame (Unix time)",
            self.last_frame.clone(),
        );
        registry.register(
            "edge_breaker_transitions",
            "Circuit breaker transitions on edge devices",
            self.breaker_transitions.clone(),
        );
        registry.register(
            "edge_restarts",
            "Restarts carried out on edge devices",
            self.restarts.clone(),
        );
        registry.register(
            "edge_escalations",
            "Recovery escalations on edge devices",
            self.escalations.clone(),
        );
        registry.register(
            "edge_operator_notified_timestamp_seconds",
            "When an edge component last asked for an operator (Unix time)",
            self.operator_notified.clone(),
        );
        registry.register(
            "edge_job_outcomes",
            "Jobs finished on edge devices, by outcome",
            self.job_outcomes.clone(),
        );
        registry.register(
            "edge_reported",
            "An edge device's own totals from its latest summary frame",
            self.reported.clone(),
        );
    }
}

// ----- the fleet -----

/// Where a device is in its silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Talking,
    Unknown,
    Silent,
}

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
    last_frame: Instant,
    last_frame_wall: SystemTime,
    phase: Phase,
    /// Component numbers to names, from component frames.
    names: HashMap<u8, String>,
    /// Tracked components by name.
    components: BTreeMap<String, Component>,
    critical: bool,
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

/// What the probe must be told after a frame, once the lock is released.
#[derive(Debug, Default)]
struct Followup {
    reset: Vec<String>,
    check: Vec<(String, Arc<PushState>)>,
}

/// A component's pushes: a change marks it dirty; one task at a time checks it until the
/// probe shows what the fleet holds (a check whose result the probe drops, because another
/// check of the component was in flight with an older answer, is pushed again).
#[derive(Debug, Default)]
struct PushState {
    /// Changed since the running push task last checked.
    dirty: AtomicBool,
    /// A push task runs.
    active: AtomicBool,
}

/// The most checks one push task makes before it leaves the rest to the probe's rounds.
const PUSH_ATTEMPTS: u32 = 100;

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

/// The answer of an edge component's check at one moment.
enum Verdict {
    Ready(HealthCheckResult),
    /// Unknown for now: ask again at this time, or when something changes.
    Pending(Instant, Pending),
}

/// Why a component is unknown.
enum Pending {
    /// The device is silent (the message says for how long).
    Silent(String),
    /// The device has not reported the component's health.
    NoStatus,
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

    /// How long an edge component's check may take: it waits while the component is unknown.
    fn check_window(&self) -> Duration {
        self.config
            .unhealthy_after
            .saturating_sub(self.config.unknown_after)
            .saturating_add(Duration::from_secs(1))
    }

    /// Applies one scanned item of a stream.
    pub fn ingest(&self, stream: &mut StreamContext, item: Scanned) {
        let frame = match item {
            Ok(frame) => frame,
            Err(bad) => {
                tracing::debug!(source = %stream.source, %bad, "bad telemetry frame skipped");
                self.count(stream, "bad");
                return;
            }
        };
        if let TelemetryFrame::Hello { device, .. } = frame {
            self.hello(stream, device);
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
    fn hello(&self, stream: &mut StreamContext, id: u32) {
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
                    false
                }
                None if tracked >= self.config.max_devices => true,
                None => {
                    let device = Device {
                        label: format!("{id:08x}"),
                        last_frame: Instant::now(),
                        last_frame_wall: SystemTime::now(),
                        phase: Phase::Talking,
                        names: HashMap::new(),
                        components: BTreeMap::new(),
                        critical: self.config.critical_devices.contains(&id),
                    };
                    tracing::info!(device = %device.label, source = %stream.source, "edge device joined");
                    self.set_last_frame(&device);
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

    /// A frame arrived from `device` now.
    fn heard(&self, device: &mut Device, followup: &mut Followup) {
        device.last_frame = Instant::now();
        device.last_frame_wall = SystemTime::now();
        self.set_last_frame(device);
        if device.phase != Phase::Talking {
            tracing::info!(device = %device.label, "edge device talks again");
            device.phase = Phase::Talking;
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
            if device.components.len() >= self.config.max_components_per_device {
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

    /// An edge component's check: answers from the ingested state, waiting while it is
    /// unknown (until news arrive or the deadline passes), at most until the check window
    /// nearly ends.
    async fn check(&self, device: &str, name: &str) -> HealthCheckResult {
        let window = self.check_window();
        let give_up =
            Instant::now() + window.saturating_sub((window / 10).min(Duration::from_millis(500)));
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (until, why) = match self.verdict(device, name) {
                Verdict::Ready(result) => return result,
                Verdict::Pending(until, why) => (until, why),
            };
            if Instant::now() >= give_up {
                return match why {
                    Pending::Silent(message) => HealthCheckResult::unhealthy(&message),
                    Pending::NoStatus => {
                        HealthCheckResult::degraded("no health status reported by the device")
                    }
                };
            }
            tokio::select! {
                () = tokio::time::sleep_until(until.min(give_up)) => {}
                () = &mut notified => {}
            }
        }
    }

    fn verdict(&self, device_label: &str, name: &str) -> Verdict {
        let fleet = lock(&self.fleet);
        let Some(device) = fleet.devices.values().find(|d| d.label == device_label) else {
            return Verdict::Ready(HealthCheckResult::unhealthy("device not tracked"));
        };
        let Some(component) = device.components.get(name) else {
            return Verdict::Ready(HealthCheckResult::unhealthy("component not tracked"));
        };
        let now = Instant::now();
        let silence = now.saturating_duration_since(device.last_frame);
        let silent = || {
            format!(
                "silent {} since {}",
                humantime::format_duration(Duration::from_secs(silence.as_secs())),
                humantime::format_rfc3339_seconds(device.last_frame_wall)
            )
        };
        if silence >= self.config.unhealthy_after {
            return Verdict::Ready(HealthCheckResult::unhealthy(&silent()));
        }
        let deadline = device.last_frame + self.config.unhealthy_after;
        if silence >= self.config.unknown_after {
            return Verdict::Pending(deadline, Pending::Silent(silent()));
        }
        let reported = match component.status {
            None | Some(HealthStatus::Unknown) => {
                return Verdict::Pending(deadline, Pending::NoStatus);
            }
            Some(status) => status,
        };
        let result = match component.escalation {
            Some((strategy, at)) => HealthCheckResult::new(
                reported.worst(HealthStatus::Degraded),
                &format!(
                    "escalated to {strategy} at {}",
                    humantime::format_rfc3339_seconds(at)
                ),
            ),
            None => {
                let message = match component.breaker {
                    CircuitState::Closed | CircuitState::Disabled => String::new(),
                    state => format!("breaker {}", state.label()),
                };
                HealthCheckResult::new(reported, &message)
            }
        };
        Verdict::Ready(result)
    }

    /// Tells the probe what changed, without the fleet's lock, and wakes waiting checks.
    fn follow_up(&self, followup: Followup) {
        self.push(followup);
        self.changed.notify_waiters();
    }

    fn push(&self, followup: Followup) {
        for name in &followup.reset {
            // Unknown at once; the probe's next check waits for news.
            let _ = self.probe.reset(name);
        }
        for (name, push) in followup.check {
            push.dirty.store(true, Ordering::SeqCst);
            if push.active.swap(true, Ordering::SeqCst) {
                continue;
            }
            let weak = self.weak.clone();
            tokio::spawn(async move {
                let Some(fleet) = weak.upgrade() else { return };
                let mut attempts = 0;
                loop {
                    push.dirty.store(false, Ordering::SeqCst);
                    let _ = fleet.probe.check(&name).await;
                    attempts += 1;
                    if !fleet.shown(&name) && attempts < PUSH_ATTEMPTS {
                        // Another check was in flight: let it land, then push again.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    if push.dirty.load(Ordering::SeqCst) && attempts < PUSH_ATTEMPTS {
                        continue;
                    }
                    push.active.store(false, Ordering::SeqCst);
                    // A change that came after the last look but found the task still active.
                    if push.dirty.load(Ordering::SeqCst)
                        && !push.active.swap(true, Ordering::SeqCst)
                        && attempts < PUSH_ATTEMPTS
                    {
                        continue;
                    }
                    return;
                }
            });
        }
    }

    /// Whether the probe shows what the fleet holds for component `full` (or the component is
    /// unknown for now, which its waiting check takes care of).
    fn shown(&self, full: &str) -> bool {
        let Some((device, name)) = full
            .strip_prefix("edge/")
            .and_then(|rest| rest.split_once('/'))
        else {
            return true;
        };
        let Verdict::Ready(expected) = self.verdict(device, name) else {
            return true;
        };
        let report = self.probe.report();
        report.component(full).is_none_or(|shown| {
            shown.status == expected.status && shown.message == expected.message()
        })
    }

    /// Moves silent devices to unknown, then unhealthy; runs until aborted.
    async fn watch_silence(fleet: Arc<EdgeFleet>) {
        loop {
            let notified = fleet.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut followup = Followup::default();
            let next = {
                let now = Instant::now();
                let mut state = lock(&fleet.fleet);
                let mut next: Option<Instant> = None;
                for device in state.devices.values_mut() {
                    let silence = now.saturating_duration_since(device.last_frame);
                    let phase = if silence >= fleet.config.unhealthy_after {
                        Phase::Silent
                    } else if silence >= fleet.config.unknown_after {
                        Phase::Unknown
                    } else {
                        Phase::Talking
                    };
                    if phase != device.phase {
                        tracing::warn!(
                            device = %device.label,
                            silent_s = silence.as_secs(),
                            to = ?phase,
                            "edge device silent"
                        );
                        for component in device.components.values() {
                            match phase {
                                Phase::Unknown => followup.reset.push(component.full.clone()),
                                Phase::Silent => followup.check(component),
                                Phase::Talking => {}
                            }
                        }
                        device.phase = phase;
                    }
                    let due = match phase {
                        Phase::Talking => Some(device.last_frame + fleet.config.unknown_after),
                        Phase::Unknown => Some(device.last_frame + fleet.config.unhealthy_after),
                        Phase::Silent => None,
                    };
                    next = match (next, due) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                next
            };
            // Resets and pushes only; no notify, or this loop would wake itself.
            fleet.push(followup);
            match next {
                Some(at) => tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = &mut notified => {}
                },
                None => notified.await,
            }
        }
    }
}

impl Followup {
    fn check(&mut self, component: &Component) {
        self.check
            .push((component.full.clone(), component.push.clone()));
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

// ----- sources -----

/// How long a followed file waits before looking for more bytes.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

const READ_CHUNK: usize = 8 * 1024;

/// Binds the TCP sources (so a bad address fails the start) and spawns a task per source,
/// plus the silence watcher. Sources start reading once `ready` resolves (the service's first
/// round of health checks is over, so no edge check holds up startup).
///
/// # Errors
/// The source and the I/O error when a TCP source cannot be bound.
pub async fn start(
    fleet: &Arc<EdgeFleet>,
    ready: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Vec<JoinHandle<()>>, (TelemetrySource, std::io::Error)> {
    let mut listeners = Vec::new();
    for source in &fleet.config.sources {
        if let SourceKind::Tcp(address) = source.kind {
            let listener = TcpListener::bind(address)
                .await
                .map_err(|error| (source.clone(), error))?;
            let bound = listener
                .local_addr()
                .map_err(|error| (source.clone(), error))?;
            tracing::info!(source = %source, %bound, "telemetry: listening for edge devices");
            lock(&fleet.listeners).push((source.clone(), bound));
            listeners.push((source.clone(), bound, listener));
        }
    }
    let mut tasks = vec![tokio::spawn(EdgeFleet::watch_silence(fleet.clone()))];
    let (go, wait) = tokio::sync::watch::channel(false);
    tasks.push(tokio::spawn(async move {
        ready.await;
        let _ = go.send(true);
    }));
    for (source, bound, listener) in listeners {
        let fleet = fleet.clone();
        let mut wait = wait.clone();
        tasks.push(tokio::spawn(async move {
            let _ = wait.wait_for(|go| *go).await;
            accept(fleet, source, bound, listener).await;
        }));
    }
    for source in fleet.config.sources.clone() {
        let fleet = fleet.clone();
        let mut wait = wait.clone();
        match source.kind.clone() {
            SourceKind::Tcp(_) => {}
            SourceKind::Stdin => tasks.push(tokio::spawn(async move {
                let _ = wait.wait_for(|go| *go).await;
                let label = source.to_string();
                read_stream(&fleet, &label, source.framing, tokio::io::stdin()).await;
                tracing::info!(source = %label, "telemetry: standard input ended");
            })),
            SourceKind::File(path) => tasks.push(tokio::spawn(async move {
                let _ = wait.wait_for(|go| *go).await;
                follow(&fleet, &source, &path).await;
            })),
        }
    }
    Ok(tasks)
}

/// Reads `input` to its end into the fleet.
pub async fn read_stream(
    fleet: &EdgeFleet,
    source: &str,
    framing: SourceFraming,
    mut input: impl AsyncRead + Unpin,
) {
    let mut scanner = FrameScanner::new(framing);
    let mut stream = StreamContext::new(source);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match input.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => scanner.push(buf.get(..n).unwrap_or_default(), &mut |item| {
                fleet.ingest(&mut stream, item);
            }),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::warn!(%source, %error, "telemetry: read failed; stream closed");
                break;
            }
        }
    }
    scanner.finish(&mut |item| fleet.ingest(&mut stream, item));
}

async fn accept(
    fleet: Arc<EdgeFleet>,
    source: TelemetrySource,
    bound: SocketAddr,
    listener: TcpListener,
) {
    let label = TelemetrySource {
        kind: SourceKind::Tcp(bound),
        framing: source.framing,
    }
    .to_string();
    let slots = Arc::new(Semaphore::new(fleet.config.max_connections));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(source = %label, %error, "telemetry: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                source = %label,
                %peer,
                max_connections = fleet.config.max_connections,
                "telemetry: connection refused, max_connections are open"
            );
            drop(socket);
            continue;
        };
        tracing::info!(source = %label, %peer, "telemetry: edge connection");
        let fleet = fleet.clone();
        let label = label.clone();
        tokio::spawn(async move {
            read_stream(&fleet, &label, source.framing, socket).await;
            tracing::info!(source = %label, %peer, "telemetry: edge connection closed");
            drop(permit);
        });
    }
}

/// Reads a file from its start and follows it as it grows; a truncated file is read again from
/// its start, a replaced one (another inode at the path) is reopened.
async fn follow(fleet: &EdgeFleet, source: &TelemetrySource, path: &Path) {
    let label = source.to_string();
    let mut warned = false;
    loop {
        let file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(error) => {
                if !warned {
                    tracing::warn!(source = %label, %error, "telemetry: cannot open; retrying");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        warned = false;
        follow_open(fleet, &label, source.framing, path.to_owned(), file).await;
    }
}

/// Follows one opened file until it is replaced or truncated.
async fn follow_open(
    fleet: &EdgeFleet,
    label: &str,
    framing: SourceFraming,
    path: PathBuf,
    mut file: tokio::fs::File,
) {
    let identity = |meta: &std::fs::Metadata| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            (meta.dev(), meta.ino())
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            (0u64, 0u64)
        }
    };
    let opened = file.metadata().await.map(|meta| identity(&meta)).ok();
    let mut scanner = FrameScanner::new(framing);
    let mut stream = StreamContext::new(label);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut position = 0u64;
    loop {
        match file.read(&mut buf).await {
            Ok(0) => {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
                let now = tokio::fs::metadata(&path).await.ok();
                let replaced = now.as_ref().map(&identity) != opened;
                let truncated = now.as_ref().is_some_and(|meta| meta.len() < position);
                if replaced || truncated {
                    tracing::info!(source = %label, replaced, truncated, "telemetry: file changed; reading it from its start");
                    scanner.finish(&mut |item| fleet.ingest(&mut stream, item));
                    return;
                }
            }
            Ok(n) => {
                position += n as u64;
                scanner.push(buf.get(..n).unwrap_or_default(), &mut |item| {
                    fleet.ingest(&mut stream, item);
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::warn!(source = %label, %error, "telemetry: read failed; reopening");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        }
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

        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(status(&probe, npu).0, HealthStatus::Unknown, "silent 11 s");
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

        feed(&fleet, &mut stream, &[health(HealthStatus::Degraded)]);
        settle().await;
        assert_eq!(status(&probe, npu).0, HealthStatus::Degraded, "talks again");
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

    #[test]
    fn component_names_are_cleaned_and_fit_the_probe() {
        assert_eq!(sanitize("accelerator", 8), "accelerator");
        assert_eq!(sanitize("a b/c\n\u{1b}[2J", 8), "a_b_c___2J");
        assert_eq!(sanitize("", 8), "_");
        let long = sanitize(&"x".repeat(40), 8);
        assert_eq!(format!("edge/00000000/{long}").len(), NAME_CAPACITY);
    }
}
