//! The edge fleet's metric families and their label sets (`rustkernel_edge_*`, listed in
//! the [module docs](super)).

#[allow(clippy::wildcard_imports)] // the fleet's types and imports, split by idea
use super::*;

/// Labels of a source's frames.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameLabels {
    /// The source as written (`tcp://127.0.0.1:9000`, `file:/var/log/edge.log`, `-`).
    pub source: String,
    /// `ok`, `bad`, `no_hello`, `refused` or `unsupported_version`.
    pub result: &'static str,
}

/// Labels of a source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The source as written (`tcp://127.0.0.1:9000`).
    pub source: String,
}

/// Labels of the connections a TCP source closed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// The source as written (`tcp://127.0.0.1:9000`).
    pub source: String,
    /// `refused` (`max_connections` were open, none from its address), `replaced` (a newer
    /// connection from its address took its slot) or `idle` (silent for `idle_timeout`).
    pub reason: &'static str,
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

/// The `rustkernel_edge_*` families (see the [module](super) for the table).
#[derive(Clone, Debug, Default)]
pub struct EdgeMetrics {
    /// Frames by source and result.
    pub frames: Family<FrameLabels, Counter>,
    /// Devices tracked.
    pub devices: Gauge,
    /// Tracked devices that sent nothing for `unknown_after` (silent or lost).
    pub devices_silent: Gauge,
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
    /// Connections open, by TCP source.
    pub connections: Family<SourceLabels, Gauge>,
    /// Connections a TCP source closed, by reason.
    pub connections_closed: Family<ConnectionLabels, Counter>,
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
            "edge_devices_silent",
            "Edge devices that sent nothing for unknown_after (silent or lost)",
            self.devices_silent.clone(),
        );
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
        registry.register(
            "edge_connections",
            "Telemetry connections open, by TCP source",
            self.connections.clone(),
        );
        registry.register(
            "edge_connections_closed",
            "Telemetry connections the service closed: refused, replaced or idle",
            self.connections_closed.clone(),
        );
    }
}
