//! The firmware scenario, checked from its telemetry: `accelerator_supervisor`'s output decoded by
//! `rustkernel telemetry decode --format json --strict`, and the frames checked in order.
//!
//! The output comes from `RUSTKERNEL_FIRMWARE_LOG` when set (`scripts/firmware-e2e.sh` sets it
//! to the output of the run it just made under QEMU), else from a run recorded in
//! `tests/data/accelerator_supervisor.log` (re-record it with `cd firmware-examples && cargo run
//! --release > ../host/tests/data/accelerator_supervisor.log` when the firmware or the frame
//! format changes).
#![allow(clippy::indexing_slicing, clippy::panic)] // serde_json's `value["key"]` never panics; a test fails by panicking

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn firmware_output() -> PathBuf {
    std::env::var_os("RUSTKERNEL_FIRMWARE_LOG").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/accelerator_supervisor.log"),
        PathBuf::from,
    )
}

/// The decoded frames, one JSON object each.
fn frames() -> Vec<Value> {
    let path = firmware_output();
    let output = Command::new(env!("CARGO_BIN_EXE_rustkernel"))
        .args(["telemetry", "decode", "--format", "json", "--strict"])
        .arg(&path)
        .output()
        .expect("rustkernel runs");
    assert!(
        output.status.success(),
        "decoding {} failed ({:?}): {}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// The frames in order, with `frame` unwrapped to the variant's fields.
struct Stream {
    frames: Vec<Value>,
}

impl Stream {
    fn kind(&self, i: usize) -> &str {
        self.frames[i]["kind"].as_str().unwrap_or_default()
    }

    /// The fields of frame `i` (the inside of `{"Breaker": {...}}`).
    fn body(&self, i: usize) -> &Value {
        self.frames[i]["frame"]
            .as_object()
            .and_then(|object| object.values().next())
            .unwrap_or(&Value::Null)
    }

    /// The first frame at or after `from` of `kind` that `matches`, or a failure naming `what`.
    fn find(&self, from: usize, kind: &str, what: &str, matches: impl Fn(&Value) -> bool) -> usize {
        (from..self.frames.len())
            .find(|&i| self.kind(i) == kind && matches(self.body(i)))
            .unwrap_or_else(|| panic!("no {what} after frame {from}"))
    }

    fn breaker(&self, from: usize, from_state: &str, to_state: &str) -> usize {
        self.find(
            from,
            "breaker",
            &format!("breaker {from_state} -> {to_state}"),
            |b| b["transition"]["from"] == from_state && b["transition"]["to"] == to_state,
        )
    }

    fn recovery(&self, from: usize, what: &str, matches: impl Fn(&Value) -> bool) -> usize {
        self.find(from, "recovery", what, |b| matches(&b["action"]))
    }
}

#[test]
fn the_scenario_runs_as_scripted() {
    let stream = Stream { frames: frames() };
    let last = stream.frames.len() - 1;
    assert!(last > 20, "only {} frames", stream.frames.len());

    // It introduces itself and names the accelerator.
    assert_eq!(stream.kind(0), "hello");
    assert_eq!(
        stream.body(0)["version"],
        u64::from(rustkernel_core::telemetry::VERSION)
    );
    let named = stream.find(0, "component", "component name", |c| {
        c["name"] == "accelerator"
    });

    // The transient burst is absorbed by retries: a job done on its third attempt, with the
    // breaker still closed.
    let burst = stream.find(named, "job", "job done after retries", |j| {
        j["outcome"] == "done" && j["attempts"] == 3
    });

    // The hang: the breaker opens after the configured 3 consecutive failures...
    let opened = stream.breaker(burst, "Closed", "Open");
    let counts = &stream.body(opened)["counts"];
    assert!(counts["failures"].as_u64() >= Some(3), "{counts}");
    // ... and says why: the figures that opened it travel with the transition.
    let trip = &stream.body(opened)["transition"]["trip"];
    assert_eq!(trip["reason"], "ConsecutiveFailures", "{trip}");
    assert_eq!(trip["consecutive_failures"], 3, "{trip}");
    assert!(
        stream.find(burst, "job", "a timed-out job", |j| {
            j["outcome"]["failed"] == "timeout" && j["attempts"] == 3
        }) < last
    );
    // ... the monitor finds the accelerator unhealthy and the supervisor resets it ...
    let unhealthy = stream.find(burst, "health", "unhealthy", |h| h["status"] == "unhealthy");
    let first_restart =
        stream.recovery(unhealthy, "first restart", |a| a["Restart"]["attempt"] == 1);
    let healthy_again = stream.find(first_restart, "health", "healthy again", |h| {
        h["status"] == "healthy"
    });
    // ... and the breaker probes half-open and closes again.
    let half_open = stream.breaker(opened, "Open", "HalfOpen");
    let closed = stream.breaker(half_open, "HalfOpen", "Closed");
    assert!(
        closed > healthy_again,
        "closed before the accelerator was back"
    );

    // The permanent fault: the breaker opens again; restarts run out (intensity 2), the
    // supervisor degrades, tries one more reset, then calls the operator.
    let reopened = stream.breaker(closed, "Closed", "Open");
    let second_restart =
        stream.recovery(closed, "second restart", |a| a["Restart"]["attempt"] == 2);
    let degrade = stream.recovery(second_restart, "escalation to degrade", |a| {
        a["Escalate"] == "Degrade"
    });
    let last_restart = stream.recovery(degrade, "restart while degraded", |a| {
        a["Restart"]["attempt"] == 1
    });
    let notify = stream.recovery(last_restart, "escalation to the operator", |a| {
        a["Escalate"] == "NotifyOperator"
    });
    assert!(reopened < degrade);
    // Degraded, jobs run on the MCU.
    stream.find(degrade, "job", "a fallback job", |j| {
        j["outcome"] == "fallback"
    });
    let jobs_after: Vec<usize> = (notify..last)
        .filter(|&i| stream.kind(i) == "job")
        .collect();
    assert!(!jobs_after.is_empty());
    assert!(
        jobs_after
            .iter()
            .all(|&i| stream.body(i)["outcome"] == "fallback")
    );

    // The summary ends the run and agrees with the frames.
    assert_eq!(stream.kind(last), "summary");
    let summary = stream.body(last);
    let count = |kind: &str, matches: &dyn Fn(&Value) -> bool| {
        (0..last)
            .filter(|&i| stream.kind(i) == kind && matches(stream.body(i)))
            .count() as u64
    };
    assert_eq!(summary["restarts"], 3, "{summary}");
    assert_eq!(summary["escalations"], 2, "{summary}");
    assert_eq!(summary["escalated_to"], "NotifyOperator", "{summary}");
    assert_eq!(
        summary["breaker_opens"].as_u64(),
        Some(count("breaker", &|b| b["transition"]["to"] == "Open"))
    );
    assert_eq!(
        summary["breaker_closes"].as_u64(),
        Some(count("breaker", &|b| {
            b["transition"]["from"] == "HalfOpen" && b["transition"]["to"] == "Closed"
        }))
    );
    assert!(summary["half_open_probes"].as_u64() >= Some(1));
    assert_eq!(
        summary["jobs_ok"].as_u64(),
        Some(count("job", &|j| j["outcome"] == "done"))
    );
    assert_eq!(
        summary["fallbacks"].as_u64(),
        Some(count("job", &|j| j["outcome"] == "fallback"))
    );
    assert_eq!(
        summary["restarts"].as_u64(),
        Some(count("recovery", &|r| r["action"]["Restart"].is_object()))
    );
    assert!(summary["retries"].as_u64() >= Some(2));

    // Time never goes back.
    let times: Vec<u64> = (0..=last)
        .filter_map(|i| stream.body(i)["at_us"].as_u64())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}
