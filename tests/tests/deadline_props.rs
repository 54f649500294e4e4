//! Property tests of deadlines and timeout resolution against a small reference model.
//!
//! The model works in `u128` microseconds, where nothing can overflow, and clamps to `u64::MAX`
//! only at the end; the core saturates at every step. Times are drawn near zero, near
//! `Instant::MAX` and anywhere between, in any order, so the clock also goes backwards.

use core::time::Duration;

use proptest::prelude::*;
use rustkernel_core::error::{ConfigError, ConfigField};
use rustkernel_core::resilience::{
    DeadlineBound, DeadlineContext, DeadlineExceeded, TimeoutConfig, WireDeadline,
};
use rustkernel_core::time::Instant;

// ---------- reference model ----------

const MAX: u128 = u64::MAX as u128;

/// Whole microseconds of a duration, unbounded.
fn micros(d: Duration) -> u128 {
    u128::from(d.as_secs()) * 1_000_000 + u128::from(d.subsec_micros())
}

/// `at + d`, clamped to the largest instant.
fn add(at: u64, d: Duration) -> u64 {
    let sum = (u128::from(at) + micros(d)).min(MAX);
    u64::try_from(sum).unwrap_or(u64::MAX)
}

fn model_remaining(deadline: u64, now: u64) -> Duration {
    Duration::from_micros(deadline.saturating_sub(now))
}

fn model_child(parent: u64, now: u64, timeout: Duration) -> u64 {
    parent.min(add(now, timeout))
}

/// The documented resolution rule, written out plainly.
fn model_resolve(
    c: &TimeoutConfig,
    requested: Option<Duration>,
    parent: Option<u64>,
    enqueued_at: u64,
    now: u64,
) -> (u64, DeadlineBound) {
    let wanted = requested.unwrap_or(c.default_timeout);
    let mut bound = if requested.is_some() {
        DeadlineBound::Requested
    } else {
        DeadlineBound::Default
    };
    if wanted > c.max_timeout {
        bound = DeadlineBound::MaxTimeout;
    }
    let timeout = wanted.min(c.max_timeout);
    let start = if c.include_queue_time && enqueued_at < now {
        enqueued_at
    } else {
        now
    };
    let mut deadline = add(start, timeout);
    if c.propagate_deadline
        && let Some(p) = parent
        && p < deadline
    {
        deadline = p;
        bound = DeadlineBound::Parent;
    }
    (deadline, bound)
}

// ---------- strategies ----------

fn instant_micros() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..10_000_000,
        2 => (u64::MAX - 10_000_000)..=u64::MAX,
        2 => any::<u64>(),
        1 => Just(0u64),
        1 => Just(u64::MAX),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0u64..20, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        2 => (0u64..10_000_000).prop_map(Duration::from_micros),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        1 => (0u32..2_000).prop_map(|n| Duration::from_nanos(u64::from(n))),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
    ]
}

fn config() -> impl Strategy<Value = TimeoutConfig> {
    (duration(), duration(), any::<bool>(), any::<bool>()).prop_map(
        |(default_timeout, max_timeout, propagate_deadline, include_queue_time)| TimeoutConfig {
            default_timeout,
            max_timeout,
            propagate_deadline,
            include_queue_time,
        },
    )
}

// ---------- properties ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A chain of children, each at its own (possibly earlier) `now`, never outlives any
    /// ancestor, and each link equals the model's.
    #[test]
    fn a_child_never_outlives_its_parent_at_any_depth(
        root_now in instant_micros(),
        root_timeout in duration(),
        hops in prop::collection::vec((instant_micros(), duration()), 0..24),
    ) {
        let root = DeadlineContext::new(Instant::from_micros(root_now), root_timeout);
        let mut model = add(root_now, root_timeout);
        prop_assert_eq!(root.deadline().as_micros(), model);
        let mut ctx = root;
        for (now, timeout) in hops {
            let child = ctx.child_with_timeout(Instant::from_micros(now), timeout);
            model = model_child(model, now, timeout);
            prop_assert!(child.deadline() <= ctx.deadline());
            prop_assert!(child.deadline() <= root.deadline());
            prop_assert!(child.deadline() <= Instant::from_micros(now) + timeout);
            prop_assert_eq!(child.deadline().as_micros(), model);
            ctx = child;
        }
    }

    /// As `now` increases, `remaining` never grows, reaches zero exactly at the deadline and
    /// stays there; `is_expired` and `check` agree with it.
    #[test]
    fn remaining_is_monotone_and_zero_after_expiry(
        deadline in instant_micros(),
        mut nows in prop::collection::vec(instant_micros(), 1..32),
    ) {
        let ctx = DeadlineContext::at(Instant::from_micros(deadline));
        nows.sort_unstable();
        let mut previous: Option<Duration> = None;
        for now in nows {
            let at = Instant::from_micros(now);
            let remaining = ctx.remaining(at);
            prop_assert_eq!(remaining, model_remaining(deadline, now));
            prop_assert_eq!(remaining.is_zero(), now >= deadline);
            prop_assert_eq!(ctx.is_expired(at), now >= deadline);
            prop_assert_eq!(ctx.check(at), if now >= deadline { Err(DeadlineExceeded) } else { Ok(()) });
            if let Some(p) = previous {
                prop_assert!(remaining <= p);
            }
            previous = Some(remaining);
        }
    }

    /// `resolve` equals the model, stays within `max_timeout` of its start, never outlives a
    /// propagated parent, and ignores the parent when propagation is off.
    #[test]
    fn resolve_matches_the_model_and_respects_its_bounds(
        c in config(),
        requested in prop::option::of(duration()),
        parent in prop::option::of(instant_micros()),
        enqueued_at in instant_micros(),
        now in instant_micros(),
    ) {
        let parent_ctx = parent.map(|p| DeadlineContext::at(Instant::from_micros(p)));
        let r = c.resolve(requested, parent_ctx, Instant::from_micros(enqueued_at), Instant::from_micros(now));
        let (deadline, bound) = model_resolve(&c, requested, parent, enqueued_at, now);
        prop_assert_eq!(r.context.deadline().as_micros(), deadline);
        prop_assert_eq!(r.bound, bound);

        let start = if c.include_queue_time { enqueued_at.min(now) } else { now };
        prop_assert!(r.context.deadline() <= Instant::from_micros(start) + c.max_timeout);
        prop_assert!(r.context.deadline() >= Instant::from_micros(start) || r.bound == DeadlineBound::Parent);
        if let (true, Some(p)) = (c.propagate_deadline, parent_ctx) {
            prop_assert!(r.context <= p);
        }
        if !c.propagate_deadline {
            let alone = c.resolve(requested, None, Instant::from_micros(enqueued_at), Instant::from_micros(now));
            prop_assert_eq!(r, alone);
        }
        if !c.include_queue_time {
            let fresh = c.resolve(requested, parent_ctx, Instant::from_micros(now), Instant::from_micros(now));
            prop_assert_eq!(r, fresh);
        }
    }

    /// On a shared clock the wire round-trip restores a live deadline exactly, directly and
    /// through postcard; an expired one comes back expired.
    #[test]
    fn the_wire_round_trip_preserves_the_deadline(
        deadline in instant_micros(),
        now in instant_micros(),
    ) {
        let ctx = DeadlineContext::at(Instant::from_micros(deadline));
        let at = Instant::from_micros(now);
        let sent = ctx.to_wire(at);
        prop_assert_eq!(sent, model_remaining(deadline, now));

        let wire = WireDeadline::from(sent);
        let mut buf = [0u8; 16];
        let bytes = postcard::to_slice(&wire, &mut buf).expect("a u64 varint fits in 16 bytes");
        let decoded: WireDeadline = postcard::from_bytes(bytes).expect("decodes");
        prop_assert_eq!(decoded, wire);

        for received in [DeadlineContext::from_wire(sent, at), DeadlineContext::from_wire(decoded.remaining(), at)] {
            if now <= deadline {
                prop_assert_eq!(received, ctx);
            } else {
                prop_assert!(received.is_expired(at));
                prop_assert_eq!(received.deadline(), at);
            }
        }
    }

    /// Across clocks with different epochs, the receiver gets the same remaining time
    /// (up to its own clock's end).
    #[test]
    fn the_wire_carries_remaining_time_across_epochs(
        deadline in instant_micros(),
        sender_now in instant_micros(),
        receiver_now in instant_micros(),
    ) {
        let sent = DeadlineContext::at(Instant::from_micros(deadline)).to_wire(Instant::from_micros(sender_now));
        let there = Instant::from_micros(receiver_now);
        let received = DeadlineContext::from_wire(sent, there);
        prop_assert_eq!(received.deadline().as_micros(), add(receiver_now, sent));
        prop_assert!(received.remaining(there) <= sent);
    }

    /// `validate` follows the documented rules, and every config survives postcard.
    #[test]
    fn validate_matches_the_rules_and_configs_round_trip(c in config()) {
        let expected = if c.default_timeout.is_zero() {
            Err(ConfigError::Zero(ConfigField::DefaultTimeout))
        } else if c.max_timeout.is_zero() {
            Err(ConfigError::Zero(ConfigField::MaxTimeout))
        } else if c.default_timeout > c.max_timeout {
            Err(ConfigError::Exceeds { field: ConfigField::DefaultTimeout, limit: ConfigField::MaxTimeout })
        } else {
            Ok(())
        };
        prop_assert_eq!(c.validate(), expected);

        let mut buf = [0u8; 64];
        let bytes = postcard::to_slice(&c, &mut buf).expect("fits");
        prop_assert_eq!(postcard::from_bytes::<TimeoutConfig>(bytes).expect("decodes"), c);
        let json = serde_json::to_string(&c).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<TimeoutConfig>(&json).expect("parses"), c);
    }
}

/// The chapter's literal compiles and equals the default.
#[test]
fn the_chapters_literal_is_the_default() {
    let config = TimeoutConfig {
        default_timeout: Duration::from_secs(30),
        max_timeout: Duration::from_secs(300),
        propagate_deadline: true,
        include_queue_time: true,
    };
    assert_eq!(config, TimeoutConfig::default());
    assert_eq!(config.validate(), Ok(()));
}

/// The model itself is checked on hand-worked cases, so a wrong model cannot pass silently.
#[test]
fn the_model_agrees_with_hand_worked_cases() {
    let c = TimeoutConfig::default();
    let s = 1_000_000u64;
    assert_eq!(
        model_resolve(&c, None, None, 100 * s, 102 * s),
        (130 * s, DeadlineBound::Default)
    );
    assert_eq!(
        model_resolve(&c, Some(Duration::MAX), Some(150 * s), 100 * s, 100 * s),
        (150 * s, DeadlineBound::Parent)
    );
    assert_eq!(add(u64::MAX - 1, Duration::from_micros(5)), u64::MAX);
    assert_eq!(model_child(10, 0, Duration::from_micros(20)), 10);
}
