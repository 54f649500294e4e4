//! The invariants, checked on a run's record. Each returns the violations it found, each with
//! the simulated time it happened at (the trace printed around it).
//!
//! To add one: write a function from `(&Record, &Shape)` to `Vec<Violation>` and list it in
//! [`all`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::clients::FEASIBLE_MARGIN;
use crate::plan::Shape;
use crate::record::{Outcome, Record};
use crate::{ANSWER_GRACE, RECOVERY_BOUND, STARTUP_BOUND};

/// A broken invariant: when, which, and what happened.
#[derive(Clone, Debug)]
pub(crate) struct Violation {
    pub(crate) at: Duration,
    pub(crate) invariant: &'static str,
    pub(crate) what: String,
}

fn violation(at: Duration, invariant: &'static str, what: String) -> Violation {
    Violation {
        at,
        invariant,
        what,
    }
}

/// Every invariant, in the order they are reported.
pub(crate) fn all(record: &Record, shape: &Shape) -> Vec<Violation> {
    let checks: [fn(&Record, &Shape) -> Vec<Violation>; 7] = [
        one_answer,
        within_deadline,
        cpu_serves_in_time,
        kernel_breakers_own_failures,
        ready_when_some_executor_serves,
        recovers_after_faults,
        metrics_match_clients,
    ];
    let mut found: Vec<Violation> = checks
        .iter()
        .flat_map(|check| check(record, shape))
        .collect();
    found.sort_by_key(|v| v.at);
    found
}

/// Every request that reached the service and whose client stayed gets exactly one answer
/// (HTTP/1.1 gives at most one per request; none is the failure to look for).
fn one_answer(record: &Record, _: &Shape) -> Vec<Violation> {
    record
        .requests
        .iter()
        .filter_map(|r| match &r.outcome {
            Some(Outcome::NoAnswer(why)) => Some(violation(
                r.sent_at,
                "every accepted request gets exactly one answer",
                format!("request {} ({}) got no answer: {why}", r.id, r.kernel),
            )),
            None => Some(violation(
                r.sent_at,
                "every accepted request gets exactly one answer",
                format!("request {} ({}) never finished", r.id, r.kernel),
            )),
            _ => None,
        })
        .collect()
}

/// No answer later than the request's deadline plus [`ANSWER_GRACE`], plus whatever the
/// network's holds added (the service's clock starts when the request arrives).
fn within_deadline(record: &Record, _: &Shape) -> Vec<Violation> {
    record
        .requests
        .iter()
        .filter_map(|r| match &r.outcome {
            Some(Outcome::Answered {
                status, elapsed, ..
            }) if *elapsed
                > r.deadline
                    + ANSWER_GRACE
                    + record.held_within(r.sent_at, r.sent_at + *elapsed) =>
            {
                Some(violation(
                    r.sent_at + *elapsed,
                    "no answer later than its deadline plus the grace",
                    format!(
                        "request {} ({}) answered {status} after {elapsed:?}, deadline {:?}",
                        r.id, r.kernel, r.deadline
                    ),
                ))
            }
            _ => None,
        })
        .collect()
}

/// A request the CPU could serve in time is answered 200: whatever the worker does, the
/// service fails over in time. Every request the clients send leaves the CPU its cost plus
/// [`FEASIBLE_MARGIN`]; the simulated CPU never fails and has no contention.
fn cpu_serves_in_time(record: &Record, _: &Shape) -> Vec<Violation> {
    record
        .requests
        .iter()
        .filter(|r| r.deadline >= r.cpu_cost + FEASIBLE_MARGIN)
        .filter_map(|r| match &r.outcome {
            Some(Outcome::Answered {
                status, elapsed, ..
            }) if *status != 200 => Some(violation(
                r.sent_at + *elapsed,
                "a request the CPU could serve in time is served",
                format!(
                    "request {} ({}) answered {status} after {elapsed:?}; deadline {:?}, CPU cost {:?}",
                    r.id, r.kernel, r.deadline, r.cpu_cost
                ),
            )),
            _ => None,
        })
        .collect()
}

/// A kernel's breaker opens only on the kernel's own failures. In the simulation the kernels
/// never fail (valid requests, a CPU that never fails, deadlines it always meets), so a kernel
/// breaker that leaves `Closed` was opened by something else: the device's faults.
fn kernel_breakers_own_failures(record: &Record, _: &Shape) -> Vec<Violation> {
    let mut found = Vec::new();
    for sample in &record.samples {
        for (kernel, state) in &sample.kernel_breakers {
            if state != "Closed" {
                found.push(violation(
                    sample.at,
                    "a kernel's breaker opens only on the kernel's own failures",
                    format!("{kernel}'s breaker is {state} though the kernel never failed"),
                ));
            }
        }
    }
    found.truncate(3);
    found
}

/// Readiness is 200 whenever some executor can serve: the CPU always can, so every probe from
/// [`STARTUP_BOUND`] after the service's start on answers 200.
fn ready_when_some_executor_serves(record: &Record, _: &Shape) -> Vec<Violation> {
    if record.launched_at.is_none() {
        return vec![violation(
            Duration::ZERO,
            "readiness is 200 whenever some executor can serve",
            "the service never started".into(),
        )];
    }
    // Times count from the start.
    let launched = Duration::ZERO;
    let mut found: Vec<Violation> = record
        .probes
        .iter()
        .filter(|p| p.at >= launched + STARTUP_BOUND && p.status != Some(200))
        // A probe the network held may go unanswered within its second.
        .filter(|p| record.held_within(p.at, p.at + Duration::from_secs(1)).is_zero())
        .map(|p| {
            violation(
                p.at,
                "readiness is 200 whenever some executor can serve",
                format!(
                    "/health/ready answered {:?} at {:.3}s ({:.3}s after the start began) while the CPU could serve",
                    p.status,
                    p.at.as_secs_f64(),
                    (p.at - launched).as_secs_f64()
                ),
            )
        })
        .collect();
    found.truncate(3);
    found
}

/// After the faults stop, everything is back within [`RECOVERY_BOUND`]: the worker ready
/// (or off for good, when the probation failed and an operator was told: the ladder's end,
/// reported in the trace) and the device's breaker closed while it is ready.
fn recovers_after_faults(record: &Record, shape: &Shape) -> Vec<Violation> {
    let from = shape.faults_until + RECOVERY_BOUND;
    let end = record.trace.last().map_or(Duration::ZERO, |(at, _)| *at);
    if end <= from {
        // A run too short to see the bound pass (`SIM_MINUTES` below 7).
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut state = None;
    for sample in &record.samples {
        if sample.at <= from {
            state = Some(sample);
            continue;
        }
        if let Some(s) = state.take() {
            found.extend(unsettled(s, from));
        }
        found.extend(unsettled(sample, sample.at));
    }
    if let Some(s) = state {
        found.extend(unsettled(s, from));
    }
    found.truncate(3);
    found
}

fn unsettled(sample: &crate::record::Sample, at: Duration) -> Option<Violation> {
    let settled =
        sample.phase == "Off" || (sample.phase == "Ready" && sample.device_breaker == "Closed");
    (!settled).then(|| {
        violation(
            at,
            "back to healthy within a bound after faults stop",
            format!(
                "{:.0}s after the faults stopped the worker is {} and the device breaker {}",
                RECOVERY_BOUND.as_secs_f64(),
                sample.phase,
                sample.device_breaker
            ),
        )
    })
}

/// `rustkernel_http_requests_total` of the execute route counts, per status, what the
/// clients saw, plus at most the requests whose clients hung up (the service may have
/// answered those, or not).
fn metrics_match_clients(record: &Record, _: &Shape) -> Vec<Violation> {
    let end = record.trace.last().map_or(Duration::ZERO, |(at, _)| *at);
    let invariant = "metrics counts equal what the clients saw";
    let Some(text) = &record.metrics else {
        return vec![violation(end, invariant, "no /metrics at the end".into())];
    };
    let mut counted: BTreeMap<u16, u64> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("rustkernel_http_requests_total{") else {
            continue;
        };
        if !rest.contains("route=\"/v1/kernels/{id}/execute\"") {
            continue;
        }
        let status = rest
            .split("status=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse::<u16>().ok());
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let (Some(status), Some(value)) = (status, value) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let value = value as u64;
            *counted.entry(status).or_default() += value;
        }
    }
    let mut seen: BTreeMap<u16, u64> = BTreeMap::new();
    let mut hung_up = 0u64;
    for r in &record.requests {
        match &r.outcome {
            Some(Outcome::Answered { status, .. }) => *seen.entry(*status).or_default() += 1,
            Some(Outcome::Disconnected(_)) => hung_up += 1,
            _ => {}
        }
    }
    let mut found = Vec::new();
    let mut extra = 0u64;
    for status in counted
        .keys()
        .chain(seen.keys())
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
    {
        let c = counted.get(&status).copied().unwrap_or(0);
        let s = seen.get(&status).copied().unwrap_or(0);
        if c < s {
            found.push(violation(
                end,
                invariant,
                format!("status {status}: the metrics count {c}, the clients saw {s}"),
            ));
        }
        extra += c.saturating_sub(s);
    }
    if extra > hung_up {
        found.push(violation(
            end,
            invariant,
            format!(
                "the metrics count {extra} answers the clients did not see, more than the {hung_up} requests whose clients hung up"
            ),
        ));
    }
    found
}
