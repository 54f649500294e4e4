//! What an edge component's check answers, and how the probe hears of a change: the verdict
//! from the ingested state, the waiting check while a component is unknown, the pushes after a
//! frame, and the silence watcher that moves quiet devices to unknown, then unhealthy (each
//! device's silence is the core's [`Silence`](rustkernel_core::resilience::Silence)).

#[allow(clippy::wildcard_imports)] // the fleet's types and imports, split by idea
use super::*;
use rustkernel_core::resilience::SilencePhase;

/// What the probe must be told after a frame, once the lock is released.
#[derive(Debug, Default)]
pub(super) struct Followup {
    pub(super) reset: Vec<String>,
    pub(super) check: Vec<(String, Arc<PushState>)>,
}

/// A component's pushes: a change marks it dirty; one task at a time checks it until the
/// probe shows what the fleet holds (a check whose result the probe drops, because another
/// check of the component was in flight with an older answer, is pushed again).
#[derive(Debug, Default)]
pub(super) struct PushState {
    /// Changed since the running push task last checked.
    pub(super) dirty: AtomicBool,
    /// A push task runs.
    pub(super) active: AtomicBool,
}

/// The most checks one push task makes before it leaves the rest to the probe's rounds.
pub(super) const PUSH_ATTEMPTS: u32 = 100;

/// The answer of an edge component's check at one moment.
pub(super) enum Verdict {
    Ready(HealthCheckResult),
    /// Unknown for now: ask again at this time, or when something changes.
    Pending(Instant, Pending),
}

/// Why a component is unknown.
pub(super) enum Pending {
    /// The device is silent (the message says for how long).
    Silent(String),
    /// The device has not reported the component's health.
    NoStatus,
}

impl EdgeFleet {
    /// How long an edge component's check may take: it waits while the component is unknown.
    pub(super) fn check_window(&self) -> Duration {
        self.config
            .unhealthy_after
            .saturating_sub(self.config.unknown_after)
            .saturating_add(Duration::from_secs(1))
    }

    /// An edge component's check: answers from the ingested state, waiting while it is
    /// unknown (until news arrive or the deadline passes), at most until the check window
    /// nearly ends.
    pub(super) async fn check(&self, device: &str, name: &str) -> HealthCheckResult {
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

    pub(super) fn verdict(&self, device_label: &str, name: &str) -> Verdict {
        let fleet = lock(&self.fleet);
        let Some(device) = fleet.devices.values().find(|d| d.label == device_label) else {
            return Verdict::Ready(HealthCheckResult::unhealthy("device not tracked"));
        };
        let Some(component) = device.components.get(name) else {
            return Verdict::Ready(HealthCheckResult::unhealthy("component not tracked"));
        };
        let now = clock::now();
        let silence = device.silence.silent_for(now);
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
        let deadline = clock::to_tokio(
            device
                .silence
                .last_heard()
                .saturating_add(self.config.unhealthy_after),
        );
        if silence >= self.config.unknown_after {
            return Verdict::Pending(deadline, Pending::Silent(silent()));
        }
        if let Some(result) = versions::newer_firmware(device.version) {
            return Verdict::Ready(result);
        }
        if name == versions::DEVICE_COMPONENT {
            let message = format!("firmware version {}", device.version);
            return Verdict::Ready(HealthCheckResult::new(HealthStatus::Healthy, &message));
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
    pub(super) fn follow_up(&self, followup: Followup) {
        self.push(followup);
        self.changed.notify_waiters();
    }

    pub(super) fn push(&self, followup: Followup) {
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
    pub(super) fn shown(&self, full: &str) -> bool {
        let Some(rest) = full.strip_prefix("edge/") else {
            return true;
        };
        // `edge/<device>/<name>`, or the device's own `edge/<device>`.
        let (device, name) = rest
            .split_once('/')
            .unwrap_or((rest, versions::DEVICE_COMPONENT));
        let Verdict::Ready(expected) = self.verdict(device, name) else {
            return true;
        };
        let report = self.probe.report();
        report.component(full).is_none_or(|shown| {
            shown.status == expected.status && shown.message == expected.message()
        })
    }

    /// Moves silent devices to unknown, then unhealthy; runs until aborted.
    pub(super) async fn watch_silence(fleet: Arc<EdgeFleet>) {
        loop {
            let notified = fleet.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut followup = Followup::default();
            let next = {
                let now = clock::now();
                let mut state = lock(&fleet.fleet);
                let mut next: Option<Instant> = None;
                for device in state.devices.values_mut() {
                    if let Some(phase) = device.silence.poll(now) {
                        tracing::warn!(
                            device = %device.label,
                            silent_s = device.silence.silent_for(now).as_secs(),
                            to = %phase,
                            "edge device silent"
                        );
                        for component in device.components.values() {
                            match phase {
                                SilencePhase::Silent => followup.reset.push(component.full.clone()),
                                SilencePhase::Lost => followup.check(component),
                                SilencePhase::Talking => {}
                            }
                        }
                    }
                    let due = device.silence.poll_at().map(clock::to_tokio);
                    next = match (next, due) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                fleet.count_silent(&state);
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
    pub(super) fn check(&mut self, component: &Component) {
        self.check
            .push((component.full.clone(), component.push.clone()));
    }
}
