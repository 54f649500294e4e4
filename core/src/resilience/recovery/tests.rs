extern crate std;

use core::time::Duration;
use std::string::ToString;

use super::*;
use crate::error::{ConfigError, ConfigField};
use crate::time::Instant;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn chapter_policy() -> RecoveryPolicy {
    RecoveryPolicy {
        strategy: RecoveryStrategy::RestartKernel,
        max_restarts: 3,
        restart_delay: Duration::from_secs(5),
        escalation: Some(RecoveryStrategy::NotifyOperator),
    }
}

fn immediate(max_restarts: u32, escalation: Option<RecoveryStrategy>) -> RecoveryPolicy {
    RecoveryPolicy {
        strategy: RecoveryStrategy::RestartKernel,
        max_restarts,
        restart_delay: Duration::ZERO,
        escalation,
    }
}

#[test]
fn chapter_literal_is_the_default_and_builds() {
    assert_eq!(chapter_policy(), RecoveryPolicy::default());
    assert_eq!(chapter_policy().validate(), Ok(()));
    let recovery: Recovery = Recovery::new(chapter_policy(), RestartIntensity::default());
    assert_eq!(recovery.state(), RecoveryState::Normal);
    assert_eq!(recovery.remaining_restarts(Instant::ZERO), 3);
    assert_eq!(recovery.poll_at(), None);
}

#[test]
fn validation_names_the_field() {
    let zero = RecoveryPolicy {
        max_restarts: 0,
        ..chapter_policy()
    };
    assert_eq!(
        zero.validate(),
        Err(ConfigError::Zero(ConfigField::MaxRestarts))
    );
    // Other strategies do not restart, so zero restarts is fine for them.
    let degrade = RecoveryPolicy {
        strategy: RecoveryStrategy::Degrade,
        ..zero
    };
    assert_eq!(degrade.validate(), Ok(()));

    let no_window = RestartIntensity {
        window: Duration::from_nanos(999),
        backoff: None,
    };
    assert_eq!(
        no_window.validate(),
        Err(ConfigError::Zero(ConfigField::RestartWindow))
    );

    for (multiplier, error) in [
        (
            f32::NAN,
            ConfigError::NotFinite(ConfigField::RestartBackoffMultiplier),
        ),
        (
            f32::INFINITY,
            ConfigError::NotFinite(ConfigField::RestartBackoffMultiplier),
        ),
        (
            0.5,
            ConfigError::MultiplierBelowOne(ConfigField::RestartBackoffMultiplier),
        ),
        (
            -2.0,
            ConfigError::MultiplierBelowOne(ConfigField::RestartBackoffMultiplier),
        ),
    ] {
        let backoff = RestartBackoff {
            multiplier,
            max: secs(60),
        };
        assert_eq!(backoff.validate(), Err(error));
        let intensity = RestartIntensity {
            window: secs(600),
            backoff: Some(backoff),
        };
        assert_eq!(
            Recovery::<8>::try_new(chapter_policy(), intensity).err(),
            Some(error)
        );
    }
    let no_cap = RestartBackoff {
        multiplier: 2.0,
        max: Duration::ZERO,
    };
    assert_eq!(
        no_cap.validate(),
        Err(ConfigError::Zero(ConfigField::RestartBackoffMax))
    );
}

#[test]
fn validation_of_the_pair() {
    let backoff = |max| RestartIntensity {
        window: secs(600),
        backoff: Some(RestartBackoff {
            multiplier: 2.0,
            max,
        }),
    };
    assert_eq!(
        backoff(secs(4)).validate_with(&chapter_policy()),
        Err(ConfigError::Exceeds {
            field: ConfigField::RestartDelay,
            limit: ConfigField::RestartBackoffMax,
        })
    );
    assert_eq!(
        backoff(secs(4)).validate_with(&immediate(3, None)),
        Err(ConfigError::Zero(ConfigField::RestartDelay))
    );
    assert_eq!(backoff(secs(60)).validate_with(&chapter_policy()), Ok(()));

    // 3 restarts 5 s apart span 15 s: a 15 s window can never see a fourth failure.
    let window = |s| RestartIntensity {
        window: secs(s),
        backoff: None,
    };
    let unreachable = Err(ConfigError::Exceeds {
        field: ConfigField::RestartDelay,
        limit: ConfigField::RestartWindow,
    });
    assert_eq!(window(15).validate_with(&chapter_policy()), unreachable);
    assert_eq!(window(16).validate_with(&chapter_policy()), Ok(()));
    // With doubling, 5 + 10 + 20 = 35 s.
    let doubling = |s| RestartIntensity {
        window: secs(s),
        backoff: Some(RestartBackoff::default()),
    };
    assert_eq!(doubling(35).validate_with(&chapter_policy()), unreachable);
    assert_eq!(doubling(36).validate_with(&chapter_policy()), Ok(()));
    // OTP's default supervisor.
    assert_eq!(
        RestartIntensity::otp().validate_with(&immediate(1, None)),
        Ok(())
    );
    // Non-restart strategies ignore the restart fields.
    let failover = RecoveryPolicy {
        strategy: RecoveryStrategy::Failover,
        max_restarts: u32::MAX,
        restart_delay: Duration::MAX,
        escalation: None,
    };
    assert_eq!(window(1).validate_with(&failover), Ok(()));
}

#[test]
fn capacity_bounds_max_restarts() {
    let policy = immediate(9, None);
    assert_eq!(
        Recovery::<8>::try_new(policy, RestartIntensity::default()).err(),
        Some(ConfigError::TooLarge {
            field: ConfigField::MaxRestarts,
            max: 8,
        })
    );
    assert!(Recovery::<9>::try_new(policy, RestartIntensity::default()).is_ok());
}

#[test]
fn capacity_is_checked_first_and_validation_is_closed_form() {
    // Both too many restarts and an unreachable window: the capacity is named first.
    let both = RecoveryPolicy {
        max_restarts: u32::MAX,
        ..chapter_policy()
    };
    let short = RestartIntensity {
        window: secs(1),
        backoff: None,
    };
    assert_eq!(
        Recovery::<8>::try_new(both, short).err(),
        Some(ConfigError::TooLarge {
            field: ConfigField::MaxRestarts,
            max: 8,
        })
    );
    // Without a capacity, u32::MAX restarts are judged in closed form: zero delays never fill
    // a window; 5 s delays fill a year's but not `Duration::MAX`'s.
    let unreachable = Err(ConfigError::Exceeds {
        field: ConfigField::RestartDelay,
        limit: ConfigField::RestartWindow,
    });
    assert_eq!(
        RestartIntensity::default().validate_with(&immediate(u32::MAX, None)),
        Ok(())
    );
    let plain = |window| RestartIntensity {
        window,
        backoff: None,
    };
    assert_eq!(plain(secs(365 * 86_400)).validate_with(&both), unreachable);
    assert_eq!(plain(Duration::MAX).validate_with(&both), Ok(()));
    // With backoff, the sum stops once the delay reaches its cap (60 s).
    let doubling = |window| RestartIntensity {
        window,
        backoff: Some(RestartBackoff::default()),
    };
    assert_eq!(
        doubling(secs(365 * 86_400)).validate_with(&both),
        unreachable
    );
    assert_eq!(doubling(Duration::MAX).validate_with(&both), Ok(()));
    let fits = RecoveryPolicy {
        max_restarts: 1_000,
        restart_delay: Duration::from_millis(1),
        ..chapter_policy()
    };
    // 1, 2, 4, .. 32768 ms (16 delays, 65.535 s), then 984 capped at 60 s: 59 105.535 s.
    let window = |s| RestartIntensity {
        window: Duration::from_millis(s),
        backoff: Some(RestartBackoff::default()),
    };
    assert_eq!(window(59_105_535).validate_with(&fits), unreachable);
    assert_eq!(window(59_105_536).validate_with(&fits), Ok(()));
    assert_eq!(
        window(59_105_536).validate_for(&fits, 999).err(),
        Some(ConfigError::TooLarge {
            field: ConfigField::MaxRestarts,
            max: 999,
        })
    );
}

#[test]
#[should_panic(expected = "recovery.max_restarts must be greater than zero")]
fn new_panics_with_the_message() {
    let _: Recovery = Recovery::new(immediate(0, None), RestartIntensity::default());
}

#[test]
fn restarts_then_escalates_then_stays_escalated() {
    let mut r: Recovery = Recovery::new(chapter_policy(), RestartIntensity::default());
    let t0 = Instant::from_secs(10);
    assert_eq!(
        r.on_failure(t0),
        RecoveryAction::Restart {
            at: t0 + secs(5),
            attempt: 1
        }
    );
    assert_eq!(r.poll_at(), Some(t0 + secs(5)));
    // A second report before the restart is not a new failure.
    let pending = r.on_failure(t0 + secs(1));
    assert_eq!(
        pending,
        RecoveryAction::RestartPending {
            at: t0 + secs(5),
            attempt: 1
        }
    );
    assert!(!pending.needs_action());
    assert_eq!(r.restarts_in_window(t0 + secs(1)), 1);
    r.poll(t0 + secs(5));
    assert_eq!(r.state(), RecoveryState::Normal);
    assert_eq!(r.poll_at(), Some(t0 + secs(60)));

    assert!(matches!(
        r.on_failure(t0 + secs(6)),
        RecoveryAction::Restart { attempt: 2, .. }
    ));
    assert!(matches!(
        r.on_failure(t0 + secs(12)),
        RecoveryAction::Restart { attempt: 3, .. }
    ));
    assert_eq!(r.remaining_restarts(t0 + secs(18)), 0);
    let escalate = r.on_failure(t0 + secs(18));
    assert_eq!(
        escalate,
        RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator)
    );
    assert!(escalate.needs_action());
    assert_eq!(
        r.escalation(),
        Some(Escalation::To(RecoveryStrategy::NotifyOperator))
    );
    assert_eq!(r.poll_at(), None);
    // Sticky, even once the restarts have left the window.
    assert_eq!(
        r.on_failure(t0 + secs(1_000)),
        RecoveryAction::AlreadyEscalated(Escalation::To(RecoveryStrategy::NotifyOperator))
    );
    // Healthy, but not yet for a whole window since the last failure.
    assert_eq!(r.on_healthy(t0 + secs(1_059)), None);
    assert_eq!(
        r.on_healthy(t0 + secs(1_060)),
        Some(Recovered::FromEscalation(Escalation::To(
            RecoveryStrategy::NotifyOperator
        )))
    );
    assert_eq!(r.escalation(), None);
    assert!(matches!(
        r.on_failure(t0 + secs(1_061)),
        RecoveryAction::Restart { attempt: 1, .. }
    ));
}

#[test]
fn no_escalation_gives_up_and_reset_restores() {
    let mut r: Recovery<2> = Recovery::new(immediate(1, None), RestartIntensity::otp());
    let t = Instant::from_secs(1);
    assert_eq!(
        r.on_failure(t),
        RecoveryAction::Restart { at: t, attempt: 1 }
    );
    assert_eq!(r.state(), RecoveryState::Normal);
    assert_eq!(r.on_failure(t + secs(4)), RecoveryAction::GiveUp);
    assert_eq!(
        r.on_failure(t + secs(5)),
        RecoveryAction::AlreadyEscalated(Escalation::GaveUp)
    );
    r.reset();
    assert_eq!(r.escalation(), None);
    assert_eq!(
        r.on_failure(t + secs(6)),
        RecoveryAction::Restart {
            at: t + secs(6),
            attempt: 1
        }
    );
}

#[test]
fn restarts_age_out_of_the_window() {
    let mut r: Recovery<2> = Recovery::new(immediate(1, None), RestartIntensity::otp());
    let t = Instant::from_secs(100);
    assert!(matches!(r.on_failure(t), RecoveryAction::Restart { .. }));
    assert_eq!(r.poll_at(), Some(t + secs(5)));
    // Exactly a window later the first restart is forgotten: OTP's one-restart-per-5-s
    // supervisor restarts forever at that pace.
    assert_eq!(
        r.on_failure(t + secs(5)),
        RecoveryAction::Restart {
            at: t + secs(5),
            attempt: 2
        }
    );
    assert_eq!(r.restarts_in_window(t + secs(5)), 1);
    assert_eq!(r.restarts_in_window(t + secs(10)), 0);
    r.poll(t + secs(10));
    assert_eq!(r.poll_at(), None);
    // Healthy for a window: the attempt count starts afresh.
    assert_eq!(r.on_healthy(t + secs(10)), Some(Recovered::Budget));
    assert_eq!(r.on_healthy(t + secs(20)), None);
    assert_eq!(r.attempt(), 0);
}

#[test]
#[allow(clippy::panic)] // a test reports a wrong action by failing
fn backoff_grows_to_the_cap_and_resets_when_healthy() {
    let policy = RecoveryPolicy {
        max_restarts: 8,
        restart_delay: secs(1),
        ..chapter_policy()
    };
    let intensity = RestartIntensity {
        window: secs(3_600),
        backoff: Some(RestartBackoff {
            multiplier: 3.0,
            max: secs(20),
        }),
    };
    let mut r: Recovery = Recovery::new(policy, intensity);
    let mut now = Instant::ZERO;
    let mut delays = std::vec::Vec::new();
    for _ in 0..5 {
        match r.on_failure(now) {
            RecoveryAction::Restart { at, .. } => {
                delays.push(at - now);
                now = at;
            }
            other => panic!("expected a restart, got {other:?}"),
        }
    }
    assert_eq!(delays, [secs(1), secs(3), secs(9), secs(20), secs(20)]);
    assert_eq!(r.on_healthy(now + secs(3_599)), None);
    assert_eq!(r.on_healthy(now + secs(3_600)), Some(Recovered::Budget));
    assert_eq!(r.next_restart_delay(), secs(1));
}

#[test]
fn other_strategies_answer_directly() {
    for (strategy, action) in [
        (RecoveryStrategy::UseReplica, RecoveryAction::UseReplica),
        (RecoveryStrategy::Degrade, RecoveryAction::Degrade),
        (RecoveryStrategy::Failover, RecoveryAction::Failover),
        (
            RecoveryStrategy::NotifyOperator,
            RecoveryAction::NotifyOperator,
        ),
    ] {
        let policy = RecoveryPolicy {
            strategy,
            ..chapter_policy()
        };
        let mut r: Recovery = Recovery::new(policy, RestartIntensity::default());
        for s in 0..20 {
            assert_eq!(r.on_failure(Instant::from_secs(s)), action);
        }
        assert_eq!(r.poll_at(), None);
        assert_eq!(r.remaining_restarts(Instant::ZERO), 0);
        assert_eq!(r.on_healthy(Instant::MAX), None);
    }
}

#[test]
fn extremes_saturate() {
    let policy = RecoveryPolicy {
        restart_delay: Duration::from_micros(u64::MAX - 1),
        max_restarts: 1,
        ..chapter_policy()
    };
    let intensity = RestartIntensity {
        window: Duration::MAX,
        backoff: Some(RestartBackoff {
            multiplier: f32::MAX,
            max: Duration::MAX,
        }),
    };
    let mut r: Recovery<1> = Recovery::new(policy, intensity);
    assert_eq!(
        r.on_failure(Instant::MAX),
        RecoveryAction::Restart {
            at: Instant::MAX,
            attempt: 1
        }
    );
    assert_eq!(r.next_restart_delay(), Duration::MAX);
    // Time going backwards counts as the latest time seen.
    assert_eq!(
        r.on_failure(Instant::ZERO),
        RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator)
    );
    assert_eq!(r.on_healthy(Instant::ZERO), None);
    assert_eq!(r.restarts_in_window(Instant::ZERO), 1);
}

#[test]
fn display_reads_well() {
    assert_eq!(
        RecoveryStrategy::RestartKernel.to_string(),
        "restart_kernel"
    );
    assert_eq!(
        RecoveryAction::Restart {
            at: Instant::from_secs(2),
            attempt: 1
        }
        .to_string(),
        "restart at 2.000000s (attempt 1)"
    );
    assert_eq!(
        RecoveryAction::Escalate(RecoveryStrategy::Failover).to_string(),
        "escalate to failover"
    );
    assert_eq!(
        RecoveryAction::AlreadyEscalated(Escalation::GaveUp).to_string(),
        "already gave up"
    );
}

#[cfg(feature = "serde")]
#[test]
fn round_trips_through_postcard() {
    fn round_trip<T>(value: T)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + core::fmt::Debug,
    {
        let mut buf = [0u8; 64];
        let bytes = postcard::to_slice(&value, &mut buf).expect("fits");
        assert_eq!(postcard::from_bytes::<T>(bytes).expect("decodes"), value);
    }
    round_trip(chapter_policy());
    for strategy in RecoveryStrategy::ALL {
        round_trip(strategy);
    }
    round_trip(RestartIntensity {
        window: secs(60),
        backoff: Some(RestartBackoff::default()),
    });
    round_trip(RecoveryAction::Restart {
        at: Instant::MAX,
        attempt: u32::MAX,
    });
    round_trip(RecoveryAction::AlreadyEscalated(Escalation::GaveUp));
    round_trip(RecoveryState::Escalated {
        escalation: Escalation::To(RecoveryStrategy::Failover),
        since: Instant::from_secs(3),
    });
    round_trip(Recovered::Budget);
}

// ----- the ladder -----

fn ms(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn restart_level(
    max_restarts: u32,
    delay: Duration,
    window: Duration,
    escalation: Option<RecoveryStrategy>,
) -> Recovery<2> {
    Recovery::new(
        RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts,
            restart_delay: delay,
            escalation,
        },
        RestartIntensity {
            window,
            backoff: None,
        },
    )
}

/// Issue 15's ladder: level 0 allows 1 restart (10 ms) in 1 s, then degrades; level 1 allows 1
/// restart after 2 s in 10 s, then notifies an operator.
fn issue_15_ladder() -> RecoveryLadder<2, 2> {
    RecoveryLadder::new([
        restart_level(
            1,
            Duration::from_millis(10),
            secs(1),
            Some(RecoveryStrategy::Degrade),
        ),
        restart_level(1, secs(2), secs(10), Some(RecoveryStrategy::NotifyOperator)),
    ])
}

#[test]
fn the_ladder_restarts_escalates_and_hands_over() {
    let mut ladder = issue_15_ladder();
    assert_eq!(
        ladder.on_failure(ms(0)),
        RecoveryStep {
            level: 0,
            action: RecoveryAction::Restart {
                at: ms(10),
                attempt: 1
            },
            directive: Directive::Restart {
                at: ms(10),
                attempt: Some(1)
            },
        }
    );
    assert_eq!(
        ladder.on_failure(ms(10)),
        RecoveryStep {
            level: 0,
            action: RecoveryAction::Escalate(RecoveryStrategy::Degrade),
            directive: Directive::Degrade,
        }
    );
    assert_eq!(ladder.level(), 1);
    assert_eq!(
        ladder.on_failure(ms(10)).directive,
        Directive::Restart {
            at: ms(2_010),
            attempt: Some(1)
        }
    );
    assert_eq!(ladder.poll_at(), Some(ms(2_010)));
    assert_eq!(
        ladder.on_failure(ms(2_010)),
        RecoveryStep {
            level: 1,
            action: RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator),
            directive: Directive::NotifyOperator,
        }
    );
    // The last level's escalation is final: nothing new.
    assert_eq!(
        ladder.on_failure(ms(2_020)).directive,
        Directive::Exhausted(Escalation::To(RecoveryStrategy::NotifyOperator))
    );
    assert_eq!(
        ladder.escalation(),
        Some(Escalation::To(RecoveryStrategy::NotifyOperator))
    );
    ladder.reset();
    assert_eq!((ladder.level(), ladder.escalation()), (0, None));
}

/// Issue 15: the component came back at 2010 ms after being down the whole time; level 0's 1 s
/// window since its last failure has long passed, but level 1's 10 s window must pass first.
#[test]
fn the_ladder_de_escalates_only_after_the_current_levels_quiet_window() {
    let mut ladder = issue_15_ladder();
    let _ = ladder.on_failure(ms(0));
    let _ = ladder.on_failure(ms(10));
    let _ = ladder.on_failure(ms(10));
    assert_eq!(ladder.level(), 1);
    assert_eq!(ladder.healthy_at(), Some(ms(12_010)));
    assert_eq!(ladder.on_healthy(ms(2_010)), None);
    assert_eq!(ladder.on_healthy(ms(12_009)), None);
    assert_eq!(ladder.level(), 1);
    assert_eq!(
        ladder.on_healthy(ms(12_010)),
        Some(Recovered::FromEscalation(Escalation::To(
            RecoveryStrategy::Degrade
        )))
    );
    assert_eq!((ladder.level(), ladder.escalation()), (0, None));
    assert_eq!(ladder.healthy_at(), None);
    // Level 1 starts afresh too.
    assert_eq!(ladder.levels()[1].attempt(), 0);
}

/// A level that takes over counts its quiet window from the escalation, even if it never sees
/// a failure: the degraded component must run a whole level-1 window.
#[test]
fn a_level_that_took_over_counts_its_window_from_the_escalation() {
    let mut ladder = issue_15_ladder();
    let _ = ladder.on_failure(ms(0));
    let _ = ladder.on_failure(ms(10));
    assert_eq!(ladder.level(), 1);
    assert_eq!(ladder.healthy_at(), Some(ms(10_010)));
    assert_eq!(ladder.on_healthy(ms(1_010)), None);
    assert_eq!(ladder.on_healthy(ms(10_009)), None);
    assert!(matches!(
        ladder.on_healthy(ms(10_010)),
        Some(Recovered::FromEscalation(_))
    ));
    assert_eq!(ladder.level(), 0);
}

/// A shallower level with a longer window than the current one ends its escalation only once
/// its own window has passed too; until then the current level just gets its budget back.
#[test]
fn each_level_waits_for_its_own_window() {
    let mut ladder: RecoveryLadder<2, 2> = RecoveryLadder::new([
        restart_level(1, Duration::ZERO, secs(60), Some(RecoveryStrategy::Degrade)),
        restart_level(
            1,
            Duration::ZERO,
            secs(10),
            Some(RecoveryStrategy::NotifyOperator),
        ),
    ]);
    let _ = ladder.on_failure(ms(0));
    let _ = ladder.on_failure(ms(0)); // escalates to level 1
    let _ = ladder.on_failure(ms(1_000)); // level 1 restarts at once
    assert_eq!(ladder.healthy_at(), Some(ms(11_000)));
    assert_eq!(ladder.on_healthy(ms(11_000)), Some(Recovered::Budget));
    assert_eq!(ladder.level(), 1);
    assert_eq!(ladder.healthy_at(), Some(ms(61_000)));
    assert_eq!(ladder.on_healthy(ms(60_999)), None);
    assert_eq!(
        ladder.on_healthy(ms(61_000)),
        Some(Recovered::FromEscalation(Escalation::To(
            RecoveryStrategy::Degrade
        )))
    );
    assert_eq!(ladder.level(), 0);
}

#[test]
fn a_level_without_escalation_hands_the_failure_on() {
    let notify: Recovery<2> = Recovery::new(
        RecoveryPolicy {
            strategy: RecoveryStrategy::NotifyOperator,
            max_restarts: 0,
            restart_delay: Duration::ZERO,
            escalation: None,
        },
        RestartIntensity::default(),
    );
    let mut ladder = RecoveryLadder::new([restart_level(1, secs(1), secs(10), None), notify]);
    let _ = ladder.on_failure(ms(0));
    assert_eq!(
        ladder.on_failure(ms(1_000)),
        RecoveryStep {
            level: 1,
            action: RecoveryAction::NotifyOperator,
            directive: Directive::NotifyOperator,
        }
    );
    let mut alone: RecoveryLadder<1, 2> = restart_level(1, secs(1), secs(10), None).into();
    let _ = alone.on_failure(ms(0));
    assert_eq!(alone.on_failure(ms(1_000)).directive, Directive::GiveUp);
    assert_eq!(
        alone.on_failure(ms(2_000)).directive,
        Directive::Exhausted(Escalation::GaveUp)
    );
}

/// An escalation to `RestartKernel` keeps restarting, uncounted, after the level's delay.
#[test]
fn an_escalation_to_restarts_keeps_restarting_uncounted() {
    let mut ladder: RecoveryLadder<1, 2> =
        restart_level(1, secs(1), secs(10), Some(RecoveryStrategy::RestartKernel)).into();
    let _ = ladder.on_failure(ms(0));
    for failed in [1_000, 2_000, 50_000] {
        assert_eq!(
            ladder.on_failure(ms(failed)).directive,
            Directive::Restart {
                at: ms(failed + 1_000),
                attempt: None
            }
        );
    }
}

/// The one mapping from decisions to directives.
#[test]
fn every_action_has_its_directive() {
    let at = Instant::from_secs(3);
    let restart_at = Instant::from_secs(8);
    for (action, directive) in [
        (
            RecoveryAction::Restart { at, attempt: 2 },
            Directive::Restart {
                at,
                attempt: Some(2),
            },
        ),
        (
            RecoveryAction::RestartPending { at, attempt: 2 },
            Directive::Pending { at },
        ),
        (RecoveryAction::UseReplica, Directive::UseReplica),
        (RecoveryAction::Degrade, Directive::Degrade),
        (RecoveryAction::Failover, Directive::Failover),
        (RecoveryAction::NotifyOperator, Directive::NotifyOperator),
        (
            RecoveryAction::Escalate(RecoveryStrategy::RestartKernel),
            Directive::Restart {
                at: restart_at,
                attempt: None,
            },
        ),
        (
            RecoveryAction::Escalate(RecoveryStrategy::Failover),
            Directive::Failover,
        ),
        (RecoveryAction::GiveUp, Directive::GiveUp),
        (
            RecoveryAction::AlreadyEscalated(Escalation::To(RecoveryStrategy::Degrade)),
            Directive::Exhausted(Escalation::To(RecoveryStrategy::Degrade)),
        ),
        (
            RecoveryAction::AlreadyEscalated(Escalation::GaveUp),
            Directive::Exhausted(Escalation::GaveUp),
        ),
    ] {
        assert_eq!(Directive::for_action(action, restart_at), directive);
        if let Some(strategy) = directive.strategy() {
            assert_eq!(action.strategy(), Some(strategy), "{action}");
        }
        assert_eq!(
            directive.restores_checkpoint(),
            matches!(
                directive.strategy(),
                Some(
                    RecoveryStrategy::RestartKernel
                        | RecoveryStrategy::UseReplica
                        | RecoveryStrategy::Failover
                        | RecoveryStrategy::Degrade
                )
            )
        );
    }
    assert_eq!(
        Directive::Restart { at, attempt: None }.to_string(),
        "restart at 3.000000s (uncounted)"
    );
}
