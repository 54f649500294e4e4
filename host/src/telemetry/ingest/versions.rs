//! Devices of a wire version the host does not read: a newer firmware's device is seen (its
//! hello reads in every version), shows as `firmware newer than host (version N)`, and its
//! other frames are counted as `unsupported_version`, logged once per device.

#[allow(clippy::wildcard_imports)] // the fleet's types and imports, split by idea
use super::*;

/// The key of a device's own component (`edge/<device>`) among its components: no name a
/// device gives (cleaned, never empty) or a component number can be empty.
pub(super) const DEVICE_COMPONENT: &str = "";

impl EdgeFleet {
    /// A whole frame of a wire version the host does not read: counted, and the device it
    /// came from heard (it talks, in a version the host cannot read).
    pub(super) fn unsupported(&self, stream: &StreamContext, version: u8) {
        self.count(stream, "unsupported_version");
        let Some(id) = stream.device.filter(|_| !stream.refused) else {
            tracing::debug!(
                source = %stream.source,
                version,
                "telemetry frame of a wire version this host does not read skipped"
            );
            return;
        };
        let mut followup = Followup::default();
        {
            let mut fleet = lock(&self.fleet);
            let Some(device) = fleet.devices.get_mut(&id) else {
                return;
            };
            self.heard(device, &mut followup);
            log_unreadable(device, version);
        }
        self.follow_up(followup);
    }

    /// The version a device's hello named: a newer one than the host reads registers the
    /// device's own component and makes every component of it say so.
    pub(super) fn firmware(&self, device: &mut Device, version: u8, followup: &mut Followup) {
        device.version = version;
        if version <= telemetry::VERSION {
            // Back to a version the host reads: its own component, if any, says so.
            if let Some(own) = device.components.get(DEVICE_COMPONENT) {
                followup.check(own);
            }
            return;
        }
        log_unreadable(device, version);
        if !device.components.contains_key(DEVICE_COMPONENT) {
            let full = format!("edge/{}", device.label);
            let label = device.label.clone();
            if self
                .register(&full, label, DEVICE_COMPONENT, device.critical)
                .is_some()
            {
                device.components.insert(
                    DEVICE_COMPONENT.to_owned(),
                    Component {
                        full,
                        status: None,
                        breaker: CircuitState::Closed,
                        escalation: None,
                        push: Arc::new(PushState::default()),
                    },
                );
            }
        }
        for component in device.components.values() {
            followup.check(component);
        }
    }
}

/// What a component of a device of `version` shows, whatever it reported, when the host does
/// not read that version; `None` when it does.
pub(super) fn newer_firmware(version: u8) -> Option<HealthCheckResult> {
    (version > telemetry::VERSION).then(|| {
        HealthCheckResult::degraded(&format!("firmware newer than host (version {version})"))
    })
}

/// Logs, once per device and version, that the device speaks a version the host does not read.
fn log_unreadable(device: &mut Device, version: u8) {
    if device.logged_version == Some(version) {
        return;
    }
    device.logged_version = Some(version);
    if version > telemetry::VERSION {
        tracing::warn!(
            device = %device.label,
            version,
            reads = ?telemetry::READ_VERSIONS,
            "edge device's firmware is newer than this host: it shows in /health, its frames \
             other than hello are counted as unsupported_version and skipped"
        );
    } else {
        tracing::warn!(
            device = %device.label,
            version,
            reads = ?telemetry::READ_VERSIONS,
            "edge device sends frames of a wire version this host does not read: counted as \
             unsupported_version and skipped"
        );
    }
}
