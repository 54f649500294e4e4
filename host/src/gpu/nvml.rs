//! Device health from NVML (nvml-wrapper): temperature, throttle reasons, ECC counts and Xid
//! events, on a thread of its own.
//!
//! NVML is loaded at run time (`libnvidia-ml.so.1`); where it is missing the watcher reports
//! [`NvmlStatus::Unknown`]`("NVML not found")` once and stops, and the `gpu` health component
//! says so without failing: the worker's own start-up check is what says whether the GPU works.
//!
//! Xids are the driver's error reports. They are of two kinds ([`classify_xid`]):
//! - application Xids (13, 31, 43, 45, 68, 109: a kernel's illegal access, a stopped or
//!   timed-out channel, a video-decoder fault) are the kernel's fault: they are counted, and
//!   the worker's own poisoned-context reply restarts it;
//! - every other Xid is treated as a hardware or driver fault (79 "fallen off the bus",
//!   48 double-bit ECC, 63/64 page retirement, 74 NVLink, 92/94/95 ECC, 119/120 GSP): the
//!   device is unhealthy and the worker is replaced; the fresh worker's clean start-up
//!   (`cuInit` and a kernel) is the check that makes it healthy again. Nothing marks a device
//!   unhealthy for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The Xids that are faults of an application's kernel, not of the device.
pub const APPLICATION_XIDS: [u64; 6] = [13, 31, 43, 45, 68, 109];

/// What an Xid says about the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XidClass {
    /// The kernel's fault ([`APPLICATION_XIDS`]); the device is fine.
    Application,
    /// A hardware or driver fault: the device is unhealthy until a check passes.
    Hardware,
}

/// Sorts an Xid into [`XidClass::Application`] or [`XidClass::Hardware`].
#[must_use]
pub fn classify_xid(xid: u64) -> XidClass {
    if APPLICATION_XIDS.contains(&xid) {
        XidClass::Application
    } else {
        XidClass::Hardware
    }
}

/// NVML's verdict on the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NvmlStatus {
    /// Readings are normal; the summary is for `/health` details.
    Ok(String),
    /// Working, but throttled for heat or power, or with uncorrected ECC errors.
    Degraded(String),
    /// No verdict: NVML is missing or failed (`"NVML not found"`).
    Unknown(String),
}

/// One reading of the device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NvmlReading {
    /// The device's name.
    pub name: String,
    /// GPU die temperature, in degrees Celsius.
    pub temperature_c: Option<u32>,
    /// Throttled by hardware or thermal slowdown.
    pub thermal_or_hw_throttled: bool,
    /// Uncorrected ECC errors since the driver loaded (volatile), where ECC is on.
    pub ecc_uncorrected: Option<u64>,
    /// Why Xid events are not watched (NVML refused to register for them), if so.
    pub xid_watch_off: Option<String>,
}

impl NvmlReading {
    /// The verdict on this reading.
    #[must_use]
    pub fn status(&self) -> NvmlStatus {
        let temp = self
            .temperature_c
            .map_or_else(|| "? C".to_owned(), |t| format!("{t} C"));
        if self.ecc_uncorrected.is_some_and(|n| n > 0) {
            return NvmlStatus::Degraded(format!(
                "{} uncorrected ECC errors",
                self.ecc_uncorrected.unwrap_or(0)
            ));
        }
        let xid = self
            .xid_watch_off
            .as_ref()
            .map_or_else(String::new, |why| format!("; Xid watching off: {why}"));
        if self.thermal_or_hw_throttled {
            return NvmlStatus::Degraded(format!("throttled (thermal or hardware), {temp}{xid}"));
        }
        NvmlStatus::Ok(format!("{} at {temp}{xid}", self.name))
    }
}

/// How often the watcher reads temperature, throttling and ECC.
const READ_EVERY: Duration = Duration::from_secs(5);

/// Starts the watcher thread for device 0: Xid events go to `on_xid`, each reading's
/// verdict to `on_status`; it ends when `stop` is set (within half a second).
pub fn spawn_watcher<X, S>(on_xid: X, on_status: S, stop: Arc<AtomicBool>)
where
    X: Fn(u64) + Send + 'static,
    S: Fn(NvmlStatus) + Send + 'static,
{
    let spawned = std::thread::Builder::new()
        .name("rustkernel-nvml".into())
        .spawn(move || watch(&on_xid, &on_status, &stop));
    if let Err(e) = spawned {
        tracing::warn!(target: "rustkernel::gpu", "NVML watcher thread: {e}");
    }
}

fn watch(on_xid: &dyn Fn(u64), on_status: &dyn Fn(NvmlStatus), stop: &AtomicBool) {
    use nvml_wrapper::Nvml;
    use nvml_wrapper::bitmasks::device::ThrottleReasons;
    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, TemperatureSensor};
    use nvml_wrapper::enums::event::XidError;
    use nvml_wrapper::error::NvmlError;

    let nvml = match Nvml::init() {
        Ok(nvml) => nvml,
        Err(NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound) => {
            on_status(NvmlStatus::Unknown("NVML not found".into()));
            return;
        }
        Err(e) => {
            on_status(NvmlStatus::Unknown(format!("NVML: {e}")));
            return;
        }
    };
    let device = match nvml.device_by_index(0) {
        Ok(device) => device,
        Err(e) => {
            on_status(NvmlStatus::Unknown(format!("NVML device 0: {e}")));
            return;
        }
    };
    let events = nvml
        .create_event_set()
        .map_err(|e| e.to_string())
        .and_then(|set| {
            device
                .register_events(EventTypes::CRITICAL_XID_ERROR, set)
                .map_err(|e| e.error.to_string())
        });
    let xid_watch_off = match &events {
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(target: "rustkernel::gpu", "NVML: cannot watch Xid events: {e}");
            Some(e.clone())
        }
    };
    let events = events.ok();
    let mut next_read = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_read {
            let throttle = device
                .current_throttle_reasons()
                .unwrap_or(ThrottleReasons::empty());
            let reading = NvmlReading {
                name: device.name().unwrap_or_else(|_| "GPU 0".into()),
                temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
                thermal_or_hw_throttled: throttle.intersects(
                    ThrottleReasons::HW_SLOWDOWN
                        | ThrottleReasons::HW_THERMAL_SLOWDOWN
                        | ThrottleReasons::SW_THERMAL_SLOWDOWN,
                ),
                ecc_uncorrected: device
                    .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                    .ok(),
                xid_watch_off: xid_watch_off.clone(),
            };
            on_status(reading.status());
            next_read = Instant::now() + READ_EVERY;
        }
        match &events {
            Some(set) => {
                if let Ok(event) = set.wait(500)
                    && let Some(XidError::Value(xid)) = event.event_data
                {
                    on_xid(xid);
                }
            }
            None => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_xids_are_the_kernels_fault() {
        for xid in APPLICATION_XIDS {
            assert_eq!(classify_xid(xid), XidClass::Application, "{xid}");
        }
        for xid in [48, 63, 64, 74, 79, 92, 94, 95, 119, 120] {
            assert_eq!(classify_xid(xid), XidClass::Hardware, "{xid}");
        }
    }

    #[test]
    fn readings_give_verdicts() {
        let mut r = NvmlReading {
            name: "H200".into(),
            temperature_c: Some(54),
            ..NvmlReading::default()
        };
        assert_eq!(r.status(), NvmlStatus::Ok("H200 at 54 C".into()));
        r.thermal_or_hw_throttled = true;
        assert_eq!(
            r.status(),
            NvmlStatus::Degraded("throttled (thermal or hardware), 54 C".into())
        );
        r.xid_watch_off = Some("Not supported".into());
        assert_eq!(
            r.status(),
            NvmlStatus::Degraded(
                "throttled (thermal or hardware), 54 C; Xid watching off: Not supported".into()
            )
        );
        r.thermal_or_hw_throttled = false;
        assert_eq!(
            r.status(),
            NvmlStatus::Ok("H200 at 54 C; Xid watching off: Not supported".into())
        );
        r.ecc_uncorrected = Some(2);
        assert_eq!(
            r.status(),
            NvmlStatus::Degraded("2 uncorrected ECC errors".into())
        );
    }

    #[test]
    fn a_machine_without_nvml_says_unknown_and_stops() {
        // This machine has no NVIDIA driver; on one that has, the watcher reports readings.
        let statuses = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = statuses.clone();
        let stop = AtomicBool::new(false);
        let on_status = move |s: NvmlStatus| sink.lock().expect("lock").push(s);
        if std::path::Path::new("/dev/nvidiactl").exists() {
            return;
        }
        watch(&|_| {}, &on_status, &stop);
        assert_eq!(
            *statuses.lock().expect("lock"),
            vec![NvmlStatus::Unknown("NVML not found".into())]
        );
    }
}
