//! A retry budget shared by many calls: retries may be at most a fraction of recent requests.
//!
//! # Why a budget, not only a retry count
//! `max_attempts` bounds the work of one call, but not of the system. When the callee is down,
//! every call fails and retries: with `max_attempts: 3` the callee sees three times its normal
//! load exactly when it can least bear it, and with three layers of services each retrying three
//! times a single user request becomes 27 calls at the bottom. Such retry storms turn a brief
//! overload into an outage. A budget bounds retries by the traffic itself: with a `retry_ratio`
//! of 0.2 retries add at most 20% to the load however many calls fail, while a small floor
//! (`min_retries_per_second`) still lets a quiet caller retry its rare failure. Finagle's
//! `RetryBudget`, Envoy's retry budgets and tower's `TpsBudget` work this way; this one keeps
//! their shape and is allocation-free: a fixed ring of [`BUDGET_SLOTS`] time slots.
//!
//! # How it counts
//! Call [`RetryBudget::deposit`] once per original request (not per retry) and
//! [`RetryBudget::try_withdraw`] before each retry, which is allowed when
//!
//! ```text
//! retries_in_window + 1 <= min_retries_per_second * window + retry_ratio * requests_in_window
//! ```
//!
//! where "in window" means in the last [`BUDGET_SLOTS`] slots of `window / BUDGET_SLOTS` each
//! (the current slot included). The ratio is counted in millionths of a retry, rounded down.
//! Because the window slides, a request can pay for a retry up to one window later; so the exact
//! guarantee is: in any `BUDGET_SLOTS` consecutive slots, retries are at most
//! `floor * window + ratio * (requests in those slots and the window before them)`, and over a
//! steady load retries approach `ratio * requests + floor * window` per window.
//!
//! A `now` earlier than one already seen is counted in the newest slot: time going backwards
//! neither refunds retries nor clears slots.
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::resilience::{RetryBudget, RetryBudgetConfig};
//! use rustkernel_core::time::Instant;
//!
//! let mut budget = RetryBudget::new(RetryBudgetConfig {
//!     window: Duration::from_secs(10),
//!     min_retries_per_second: 0,
//!     retry_ratio: 0.5,
//! });
//! let now = Instant::from_secs(1);
//! budget.deposit(now);
//! budget.deposit(now);
//! assert!(budget.try_withdraw(now)); // 2 requests * 0.5 = 1 retry
//! assert!(!budget.try_withdraw(now));
//! ```

use core::time::Duration;

use crate::error::{ConfigError, ConfigField, valid_or_panic};
use crate::time::{Instant, duration_as_micros};

/// How many time slots a [`RetryBudget`] window is split into.
pub const BUDGET_SLOTS: usize = 10;
const SLOTS: u64 = 10;
/// One retry costs this many units; a request deposits `retry_ratio` times as many.
const UNITS_PER_RETRY: u64 = 1_000_000;
/// The largest accepted `retry_ratio`, as in Finagle and tower.
const MAX_RATIO: f32 = 1_000.0;
/// `MAX_RATIO` retries in units.
const MAX_UNITS: u64 = 1_000 * UNITS_PER_RETRY;

/// Settings of a [`RetryBudget`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetryBudgetConfig {
    /// How far back requests and retries are remembered; split into [`BUDGET_SLOTS`] slots and
    /// rounded down to a whole number of microseconds per slot (at least one).
    pub window: Duration,
    /// Retries per second allowed whatever the traffic, so a quiet caller can still retry.
    pub min_retries_per_second: u32,
    /// Retries allowed per original request, in `[0, 1000]` (0.2 = retries add at most 20%).
    pub retry_ratio: f32,
}

impl Default for RetryBudgetConfig {
    /// tower's defaults: a 10 s window, 10 retries per second, retries up to 20% of requests.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            min_retries_per_second: 10,
            retry_ratio: 0.2,
        }
    }
}

impl RetryBudgetConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] for a window under a microsecond, [`ConfigError::NotFinite`] for a
    /// NaN or infinite ratio, [`ConfigError::RateOutOfRange`] for a negative ratio and
    /// [`ConfigError::TooLarge`] for a ratio above 1000.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        let ratio = ConfigField::BudgetRetryRatio;
        if duration_as_micros(self.window) == 0 {
            return Err(ConfigError::Zero(ConfigField::BudgetWindow));
        }
        if !self.retry_ratio.is_finite() {
            return Err(ConfigError::NotFinite(ratio));
        }
        if self.retry_ratio < 0.0 {
            return Err(ConfigError::RateOutOfRange(ratio));
        }
        if self.retry_ratio > MAX_RATIO {
            return Err(ConfigError::TooLarge {
                field: ratio,
                max: 1_000,
            });
        }
        Ok(())
    }
}

/// Requests and retries counted in one time slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Slot {
    deposits: u64,
    withdrawals: u64,
}

impl Slot {
    const EMPTY: Self = Self {
        deposits: 0,
        withdrawals: 0,
    };
}

/// A token bucket over a sliding window that limits retries to a share of recent requests.
///
/// Share one budget between every call to the same callee (the adapter decides how: a mutex, a
/// `RefCell`, a per-core budget). Inputs: [`deposit`](Self::deposit) per original request,
/// [`try_withdraw`](Self::try_withdraw) per retry. Getters: [`available`](Self::available),
/// [`config`](Self::config). See the [module docs](self) for the exact guarantee.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    slot_micros: u64,
    deposit_units: u64,
    reserve_units: u64,
    /// Absolute number (`micros / slot_micros`) of the newest slot.
    newest: u64,
    slots: [Slot; BUDGET_SLOTS],
}

impl RetryBudget {
    /// A budget with no requests or retries counted yet.
    ///
    /// # Errors
    /// The error of [`RetryBudgetConfig::validate`].
    pub const fn try_new(config: RetryBudgetConfig) -> Result<Self, ConfigError> {
        if let Err(error) = config.validate() {
            return Err(error);
        }
        let slot_micros = duration_as_micros(config.window) / SLOTS;
        let slot_micros = if slot_micros == 0 { 1 } else { slot_micros };
        let window_micros = slot_micros.saturating_mul(SLOTS);
        Ok(Self {
            config,
            slot_micros,
            deposit_units: ratio_units(config.retry_ratio),
            // Retries per second * seconds * units per retry, with 10^6 units and micros alike.
            reserve_units: (config.min_retries_per_second as u64).saturating_mul(window_micros),
            newest: 0,
            slots: [Slot::EMPTY; BUDGET_SLOTS],
        })
    }

    /// A budget with no requests or retries counted yet.
    ///
    /// # Panics
    /// When `config` is invalid, with the message of its [`ConfigError`]; use
    /// [`try_new`](Self::try_new) to get the error instead.
    #[must_use]
    #[track_caller]
    pub fn new(config: RetryBudgetConfig) -> Self {
        valid_or_panic(Self::try_new(config), "retry budget configuration")
    }

    /// Counts one original request (not a retry) at `now`.
    pub fn deposit(&mut self, now: Instant) {
        self.advance(now);
        if let Some(slot) = self.slots.get_mut(index(self.newest)) {
            slot.deposits = slot.deposits.saturating_add(1);
        }
    }

    /// Until when (exclusive) a [`deposit`](Self::deposit) lands in the newest slot without
    /// moving the ring (the end of that slot), so that an adapter may count deposits made
    /// before it on the side and hand them over with [`record_deposits`](Self::record_deposits).
    #[must_use]
    pub fn deposits_deferrable_until(&self) -> Instant {
        Instant::from_micros(
            self.newest
                .saturating_add(1)
                .saturating_mul(self.slot_micros),
        )
    }

    /// Counts `count` original requests in the newest slot, as `count` calls of
    /// [`deposit`](Self::deposit) made before
    /// [`deposits_deferrable_until`](Self::deposits_deferrable_until) would. Call it before the
    /// next input, so that the ring has not moved past their slot.
    pub fn record_deposits(&mut self, count: u64) {
        if let Some(slot) = self.slots.get_mut(index(self.newest)) {
            slot.deposits = slot.deposits.saturating_add(count);
        }
    }

    /// Takes one retry from the budget at `now`; `false` (and nothing taken) when it is spent.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        self.advance(now);
        let (deposits, withdrawals) = self.totals(self.newest);
        if !self.allows(deposits, withdrawals) {
            return false;
        }
        if let Some(slot) = self.slots.get_mut(index(self.newest)) {
            slot.withdrawals = slot.withdrawals.saturating_add(1);
        }
        true
    }

    /// How many retries [`try_withdraw`](Self::try_withdraw) would allow at `now` if no
    /// request came in meanwhile.
    #[must_use]
    pub fn available(&self, now: Instant) -> u64 {
        let at = self.slot_number(now).max(self.newest);
        let (deposits, withdrawals) = self.totals(at);
        let credit = self.credit(deposits);
        let spent = u128::from(withdrawals) * u128::from(UNITS_PER_RETRY);
        u64::try_from(credit.saturating_sub(spent) / u128::from(UNITS_PER_RETRY))
            .unwrap_or(u64::MAX)
    }

    /// The configuration the budget was built with.
    #[must_use]
    pub const fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    fn slot_number(&self, now: Instant) -> u64 {
        now.as_micros() / self.slot_micros.max(1)
    }

    /// Moves the ring forward to `now`'s slot, clearing slots that left the window. A `now`
    /// that went backwards moves nothing: it is counted in the newest slot.
    fn advance(&mut self, now: Instant) {
        let target = self.slot_number(now);
        if target > self.newest {
            let gap = target - self.newest;
            if gap >= SLOTS {
                self.slots = [Slot::default(); BUDGET_SLOTS];
            } else {
                for step in 1..=gap {
                    if let Some(slot) = self.slots.get_mut(index(self.newest.saturating_add(step)))
                    {
                        *slot = Slot::default();
                    }
                }
            }
            self.newest = target;
        }
    }

    /// Requests and retries counted in the window that ends with slot number `at`
    /// (`at >= newest`).
    fn totals(&self, at: u64) -> (u64, u64) {
        let mut deposits = 0u64;
        let mut withdrawals = 0u64;
        for age in 0..SLOTS {
            let Some(number) = self.newest.checked_sub(age) else {
                break;
            };
            if at.saturating_sub(number) >= SLOTS {
                break;
            }
            if let Some(slot) = self.slots.get(index(number)) {
                deposits = deposits.saturating_add(slot.deposits);
                withdrawals = withdrawals.saturating_add(slot.withdrawals);
            }
        }
        (deposits, withdrawals)
    }

    fn credit(&self, deposits: u64) -> u128 {
        u128::from(self.reserve_units)
            .saturating_add(u128::from(deposits).saturating_mul(u128::from(self.deposit_units)))
    }

    fn allows(&self, deposits: u64, withdrawals: u64) -> bool {
        let cost = (u128::from(withdrawals) + 1).saturating_mul(u128::from(UNITS_PER_RETRY));
        self.credit(deposits) >= cost
    }
}

/// Position of slot number `number` in the ring.
fn index(number: u64) -> usize {
    usize::try_from(number % SLOTS).unwrap_or(0)
}

/// `retry_ratio` in millionths of a retry: the `f32` product `ratio * 10^6` (rounded to nearest)
/// rounded down, capped at `MAX_RATIO` retries; NaN and negatives count as zero.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "`as` rounds toward zero and saturates (NaN gives 0); 10^6 is exact in an f32"
)]
const fn ratio_units(ratio: f32) -> u64 {
    // So 0.7 (0.699999988 as an f32) counts as 700 000 units, not 699 999.
    let units = (ratio * UNITS_PER_RETRY as f32) as u32 as u64;
    if units < MAX_UNITS { units } else { MAX_UNITS }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RetryBudget {
    fn format(&self, f: defmt::Formatter<'_>) {
        let (deposits, withdrawals) = self.totals(self.newest);
        defmt::write!(
            f,
            "RetryBudget {{ config: {}, requests: {=u64}, retries: {=u64} }}",
            self.config,
            deposits,
            withdrawals
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(window_secs: u64, floor: u32, ratio: f32) -> RetryBudget {
        RetryBudget::new(RetryBudgetConfig {
            window: Duration::from_secs(window_secs),
            min_retries_per_second: floor,
            retry_ratio: ratio,
        })
    }

    #[test]
    fn validation_errors_are_typed() {
        let ok = RetryBudgetConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let ratio = ConfigField::BudgetRetryRatio;
        let cases = [
            (
                RetryBudgetConfig {
                    window: Duration::ZERO,
                    ..ok
                },
                ConfigError::Zero(ConfigField::BudgetWindow),
            ),
            (
                RetryBudgetConfig {
                    window: Duration::from_nanos(999),
                    ..ok
                },
                ConfigError::Zero(ConfigField::BudgetWindow),
            ),
            (
                RetryBudgetConfig {
                    retry_ratio: f32::NAN,
                    ..ok
                },
                ConfigError::NotFinite(ratio),
            ),
            (
                RetryBudgetConfig {
                    retry_ratio: f32::INFINITY,
                    ..ok
                },
                ConfigError::NotFinite(ratio),
            ),
            (
                RetryBudgetConfig {
                    retry_ratio: -0.1,
                    ..ok
                },
                ConfigError::RateOutOfRange(ratio),
            ),
            (
                RetryBudgetConfig {
                    retry_ratio: 1_000.5,
                    ..ok
                },
                ConfigError::TooLarge {
                    field: ratio,
                    max: 1_000,
                },
            ),
        ];
        for (config, error) in cases {
            assert_eq!(config.validate(), Err(error));
            assert_eq!(RetryBudget::try_new(config), Err(error));
        }
        for retry_ratio in [0.0, 1_000.0] {
            assert_eq!(RetryBudgetConfig { retry_ratio, ..ok }.validate(), Ok(()));
        }
    }

    #[test]
    #[should_panic(expected = "retry_budget.window must be greater than zero")]
    fn new_panics_with_the_message() {
        let _ = budget(0, 1, 0.1);
    }

    #[test]
    fn ratio_of_requests_plus_floor() {
        // Floor: 1/s over 10 s = 10 retries; ratio 0.25 of 8 requests = 2 more.
        let mut b = budget(10, 1, 0.25);
        let now = Instant::from_secs(100);
        for _ in 0..8 {
            b.deposit(now);
        }
        assert_eq!(b.available(now), 12);
        let allowed = (0..20).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(allowed, 12);
        assert_eq!(b.available(now), 0);
        // A window later everything has expired: only the floor is left.
        let later = now + Duration::from_secs(10);
        assert_eq!(b.available(later), 10);
        assert_eq!((0..20).filter(|_| b.try_withdraw(later)).count(), 10);
    }

    #[test]
    fn slots_expire_one_by_one() {
        // Ten 1 s slots; no floor; one retry per request.
        let mut b = budget(10, 0, 1.0);
        b.deposit(Instant::from_secs(0));
        b.deposit(Instant::from_millis(5_500));
        assert_eq!(b.available(Instant::from_millis(9_999)), 2);
        assert_eq!(b.available(Instant::from_secs(10)), 1);
        assert_eq!(b.available(Instant::from_millis(14_999)), 1);
        assert_eq!(b.available(Instant::from_secs(15)), 0);
        assert!(b.try_withdraw(Instant::from_secs(12)));
        assert!(!b.try_withdraw(Instant::from_secs(12)));
    }

    #[test]
    fn time_going_backwards_refunds_nothing() {
        let mut b = budget(10, 0, 1.0);
        b.deposit(Instant::from_secs(50));
        assert!(b.try_withdraw(Instant::from_secs(50)));
        // Back to the epoch: counted in the newest slot, the retry stays spent.
        assert!(!b.try_withdraw(Instant::ZERO));
        b.deposit(Instant::ZERO);
        assert_eq!(b.available(Instant::ZERO), 1);
        assert!(b.try_withdraw(Instant::from_secs(1)));
        assert!(!b.try_withdraw(Instant::from_secs(55)));
        // Extremes neither panic nor wrap.
        b.deposit(Instant::MAX);
        assert!(b.try_withdraw(Instant::MAX));
        assert!(!b.try_withdraw(Instant::ZERO));
        assert_eq!(b.available(Instant::MAX), 0);
    }

    #[test]
    fn zero_ratio_and_floor_allow_nothing_and_huge_values_saturate() {
        let mut none = budget(10, 0, 0.0);
        none.deposit(Instant::ZERO);
        assert!(!none.try_withdraw(Instant::ZERO));
        let mut lots = RetryBudget::new(RetryBudgetConfig {
            window: Duration::MAX,
            min_retries_per_second: u32::MAX,
            retry_ratio: 1_000.0,
        });
        assert!(lots.try_withdraw(Instant::MAX));
        assert_eq!(
            lots.available(Instant::ZERO),
            u64::MAX / UNITS_PER_RETRY - 1
        );
    }

    #[test]
    fn deposits_handed_over_count_as_deposits_made_before_the_slot_ends() {
        // An adapter that counts deposits on the side while the newest slot lasts, hands them
        // over before its next input, and deposits through the budget otherwise, keeps the
        // budget a plain one would: across slots, a window and time going backwards.
        let mut plain = budget(10, 0, 0.5);
        let mut deferred = plain;
        let mut pending = 0;
        for millis in [
            0, 300, 999, 1_000, 1_500, 4_200, 4_999, 12_000, 11_000, 30_000,
        ] {
            let now = Instant::from_millis(millis);
            plain.deposit(now);
            if now < deferred.deposits_deferrable_until() {
                pending += 1;
            } else {
                deferred.record_deposits(pending);
                pending = 0;
                deferred.deposit(now);
            }
        }
        deferred.record_deposits(pending);
        assert_eq!(deferred, plain);
        let now = Instant::from_secs(30);
        assert_eq!(deferred.available(now), plain.available(now));
        assert_eq!(deferred.deposits_deferrable_until(), Instant::from_secs(31));
    }

    #[test]
    fn tiny_windows_use_one_microsecond_slots() {
        let mut b = RetryBudget::new(RetryBudgetConfig {
            window: Duration::from_micros(3),
            min_retries_per_second: 0,
            retry_ratio: 1.0,
        });
        b.deposit(Instant::from_micros(0));
        assert_eq!(b.available(Instant::from_micros(9)), 1);
        assert_eq!(b.available(Instant::from_micros(10)), 0);
    }
}
