//! Health checks: probes with hysteresis and timeouts, Kubernetes' startup, liveness and
//! readiness roles, and a registry of named components.
//!
//! The pieces:
//! - [`HealthStatus`] and [`HealthCheckResult`]: what one check says (the chapter's types);
//! - [`HealthProbeConfig`] (alias [`HealthCheckConfig`]): interval, timeout, thresholds;
//! - [`HealthRegistry`]: up to `N` named components; `live`, `ready`, `started`, `overall`.
//!   It is the one entry point: it starts checks, takes results, notices timeouts and startup
//!   deadlines;
//! - [`Silence`]: how long a source that should speak (a heartbeat, telemetry) has been quiet,
//!   against two thresholds;
//! - read-only views of what the registry holds, for reports: [`ComponentEntry`],
//!   [`ComponentHealth`] (a component's startup, liveness and readiness probes, with startup
//!   gating) and [`ProbeState`] (one probe's status with hysteresis, its counters and last
//!   result).
//!
//! Like the rest of the core they read no clock: every input takes `now`, and `poll_at` says
//! when to come back. Running the checks themselves (calling the kernel, the GPU) is the
//! adapter's job; it hands each result back with the ticket of the check.

mod component;
mod config;
mod probe;
mod registry;
mod role;
mod silence;
mod status;

pub use component::{
    ComponentEvent, ComponentHealth, ComponentPhase, IgnoredResult, StartError, StartupFailure,
};
pub use config::{HealthCheckConfig, HealthProbeConfig};
pub use probe::{ProbeState, ProbeStats};
pub use registry::{
    CheckTicket, ComponentEntry, ComponentId, ComponentName, Criticality, HealthEvent,
    HealthRegistry, NAME_CAPACITY, RegistryError, UnknownComponent,
};
pub use role::{ProbeRole, ProbeRoles};
pub use silence::{Silence, SilenceConfig, SilencePhase};
pub use status::{HealthCheckResult, HealthStatus, MESSAGE_CAPACITY};
