//! How likely a rate-mode breaker is to open on a dependency that is healthy, for sizing its
//! window: a window that is too short, or evaluated from too few calls, opens on ordinary noise.
//!
//! A healthy dependency still fails some share of its calls (its *baseline*). Take each call to
//! fail on its own with that chance. Then:
//! - [`window_trip_chance`] is the chance that one evaluation of `calls` outcomes reaches the
//!   threshold: the binomial tail `P(X >= k)`, `X ~ Binomial(calls, baseline)`, `k` the fewest
//!   failures that reach it (as the breaker compares: `3 of 10` reaches `0.3`). Evaluated at the
//!   window's size it bounds the long run: once the window is full, every call evaluates a full
//!   window, so the expected number of false opens over `n` calls is at most
//!   `n * window_trip_chance(baseline, window, threshold)`. Evaluated at `minimum_calls` it is
//!   the chance that the very first evaluation opens.
//! - [`first_fill_trip_chance`] is the chance that the breaker opens while its window fills for
//!   the first time (after a start, a close or a reset): evaluated on every call from
//!   `minimum_calls` to the window's size, over a growing window. Short minimum counts make
//!   these early evaluations noisy.
//!
//! Both are `const fn`s over `f64` (a planning tool: use them in a `const`, a test or on the
//! host; on a Cortex-M each `f64` operation is a software routine). They return `None` for a
//! baseline outside `[0, 1]`, a threshold outside `(0, 1]`, no calls, more than
//! [`MAX_SIZING_CALLS`] calls, or a `minimum_calls` of 0 or beyond the window.
//!
//! # Figures
//! The chance of opening on a healthy dependency, for three windows at a threshold of 0.5
//! (first fill; in brackets, one evaluation of the full window):
//!
//! | baseline | `CountWindow<20>`, 10 min | `CountWindow<100>`, 20 min | `CountWindow<100>`, 50 min |
//! |----------|---------------------------|----------------------------|----------------------------|
//! | 1 %      | 2.4e-8 (1.7e-15)          | 1.7e-15 (6.2e-72)          | 1.0e-36 (6.2e-72)          |
//! | 5 %      | 6.6e-5 (1.1e-8)           | 1.2e-8 (7.3e-38)           | 1.2e-19 (7.3e-38)          |
//! | 10 %     | 1.8e-3 (7.2e-6)           | 7.9e-6 (5.8e-24)           | 1.1e-12 (5.8e-24)          |
//! | 20 %     | 3.9e-2 (2.6e-3)           | 3.2e-3 (2.1e-11)           | 2.6e-6 (2.1e-11)           |
//! | 35 %     | 3.2e-1 (1.2e-1)           | 1.7e-1 (1.5e-3)            | 3.1e-2 (1.5e-3)            |
//!
//! And the issue's case, `CountWindow<20>` with 10 minimum calls at a threshold of 0.6 on a
//! 35 % baseline: 11 % while the window first fills, 2.0 % per evaluation of the full window, so
//! over a phase of 200 calls at most 0.11 + 180 * 0.020 = 3.6 opening evaluations are expected
//! (simulated: it opens in about half of such phases). The test `the_table_in_the_docs_is_what_the_functions_give` checks
//! every figure here.
//!
//! # A configuration per traffic level
//! Keep the threshold well above the baseline (at least twice it) and the window long enough
//! that [`window_trip_chance`] times the calls in a day stays well below one:
//!
//! | traffic | configuration |
//! |---------|---------------|
//! | under 1 call per second | the consecutive mode (`failure_threshold: 5`), or a [`TimeWindow`](super::TimeWindow) of 5 minutes with `minimum_calls: 10`: a count window would hold outcomes hours old |
//! | 1 to 100 calls per second | [`CountWindow<100>`](super::CountWindow), `minimum_calls: 20` to 50, `failure_rate_threshold: 0.5` |
//! | over 100 calls per second | a [`TimeWindow<10>`](super::TimeWindow) of 10 to 60 s, `minimum_calls: 100`, `failure_rate_threshold: 0.5` (the window then holds thousands of calls; its noise is negligible) |
//!
//! ```
//! use rustkernel_core::resilience::circuit_breaker::sizing::{
//!     first_fill_trip_chance, window_trip_chance,
//! };
//! // A 10 % baseline, the last 100 calls, 20 to start, open at half.
//! const FIRST_FILL: Option<f64> = first_fill_trip_chance(0.10, 100, 20, 0.5);
//! let per_call = window_trip_chance(0.10, 100, 0.5).unwrap();
//! assert!(FIRST_FILL.unwrap() < 1e-5);
//! // A million calls: fewer than one false open expected.
//! assert!(per_call * 1e6 < 1e-15);
//! ```

/// The most calls the sizing functions take (their work grows with its square).
pub const MAX_SIZING_CALLS: u32 = 1_000;

const SLOTS: usize = MAX_SIZING_CALLS as usize + 1;

/// The chance that one evaluation of `calls` outcomes, each a failure with chance `baseline`,
/// reaches `threshold` (as the breaker compares); see the [module docs](self).
#[must_use]
pub const fn window_trip_chance(baseline: f64, calls: u32, threshold: f32) -> Option<f64> {
    trip_chance(baseline, calls, calls, threshold, false)
}

/// The chance that a breaker with a window of `window` calls, evaluated from `minimum_calls`
/// on, opens while its window first fills, when each call fails with chance `baseline`; see the
/// [module docs](self).
#[must_use]
pub const fn first_fill_trip_chance(
    baseline: f64,
    window: u32,
    minimum_calls: u32,
    threshold: f32,
) -> Option<f64> {
    trip_chance(baseline, window, minimum_calls, threshold, true)
}

/// The distribution of failures over the first `window` calls, call by call; from
/// `minimum_calls` on, the mass at counts that reach `threshold` is taken out as a trip when
/// `absorb` (an evaluation on every call) and only summed at the last call otherwise.
const fn trip_chance(
    baseline: f64,
    window: u32,
    minimum_calls: u32,
    threshold: f32,
    absorb: bool,
) -> Option<f64> {
    // Written so that NaN fails each range.
    let in_range = baseline >= 0.0 && baseline <= 1.0 && threshold > 0.0 && threshold <= 1.0;
    if !in_range
        || window == 0
        || window > MAX_SIZING_CALLS
        || minimum_calls == 0
        || minimum_calls > window
    {
        return None;
    }
    // At f: the chance of f failures so far and no trip yet.
    let mut failures = [0.0f64; SLOTS];
    let mut tripped = 0.0;
    set(&mut failures, 0, 1.0);
    let mut calls = 1;
    while calls <= window {
        // Call `calls`: f failures come from f - 1 and a failure, or f and a success.
        let mut f = calls;
        while f > 0 {
            let chance = get(&failures, f) * (1.0 - baseline) + get(&failures, f - 1) * baseline;
            set(&mut failures, f, chance);
            f -= 1;
        }
        let none = get(&failures, 0) * (1.0 - baseline);
        set(&mut failures, 0, none);
        if calls >= minimum_calls && (absorb || calls == window) {
            let mut f = 0;
            while f <= calls {
                if crate::float::reaches_rate(f, threshold, calls) {
                    tripped += get(&failures, f);
                    set(&mut failures, f, 0.0);
                }
                f += 1;
            }
        }
        calls += 1;
    }
    Some(tripped)
}

/// `slots[i]`, or 0 past the end (never: `i <= MAX_SIZING_CALLS`).
const fn get(slots: &[f64; SLOTS], i: u32) -> f64 {
    if let Some((_, rest)) = slots.split_at_checked(i as usize)
        && let Some(value) = rest.first()
    {
        *value
    } else {
        0.0
    }
}

/// `slots[i] = value`, or nothing past the end (never: `i <= MAX_SIZING_CALLS`).
const fn set(slots: &mut [f64; SLOTS], i: u32, value: f64) {
    if let Some((_, rest)) = slots.split_at_mut_checked(i as usize)
        && let Some(slot) = rest.first_mut()
    {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::String;

    use super::{MAX_SIZING_CALLS, first_fill_trip_chance, window_trip_chance};

    fn close(got: Option<f64>, want: f64) {
        let got = got.expect("in range");
        let scale = want.abs().max(f64::MIN_POSITIVE);
        assert!(
            (got - want).abs() <= 1e-9 * scale,
            "got {got:e}, want {want:e}"
        );
    }

    /// Figures computed apart from this code: by Python with exact fractions, the binomial tail
    /// as a sum of `math.comb(n, f) * p**f * (1 - p)**(n - f)` from the fewest failures that
    /// reach the threshold (found with the breaker's f32 division), the first fill by an exact
    /// dynamic program over the failure counts.
    #[test]
    fn figures_agree_with_an_independent_computation() {
        // (baseline, calls, threshold, P(X >= k)); k = 3 for 0.3 of 10, as the breaker compares.
        for (baseline, calls, threshold, want) in [
            (0.35, 20, 0.6, 0.019_579_355_334_891_316),
            (0.1, 10, 0.3, 0.070_190_826_4),
            (0.05, 100, 0.5, 7.269_307_456_113_735e-38),
            (0.2, 50, 0.25, 0.186_056_993_462_618_67),
            (0.5, 7, 0.5, 0.5),
            (0.0, 10, 0.5, 0.0),
            (1.0, 10, 1.0, 1.0),
            (0.3, 1000, 0.4, 1.104_129_819_055_682_2e-11),
        ] {
            close(window_trip_chance(baseline, calls, threshold), want);
        }
        // (baseline, window, minimum calls, threshold, P(opens while the window first fills)).
        for (baseline, window, minimum, threshold, want) in [
            (0.35, 20, 10, 0.6, 0.110_565_224_779_498_52),
            (0.1, 100, 20, 0.5, 7.859_764_654_256e-6),
            (0.2, 20, 5, 0.5, 0.115_699_037_683_014_69),
            (0.05, 10, 1, 0.3, 0.150_821_847_95),
            (0.3, 30, 30, 0.4, 0.159_321_794_687_925_43),
        ] {
            close(
                first_fill_trip_chance(baseline, window, minimum, threshold),
                want,
            );
        }
        // Evaluated only at the full window, the first fill is the tail.
        assert_eq!(
            first_fill_trip_chance(0.2, 50, 50, 0.25),
            window_trip_chance(0.2, 50, 0.25)
        );
    }

    #[test]
    fn out_of_range_inputs_have_no_figure() {
        assert_eq!(window_trip_chance(-0.1, 10, 0.5), None);
        assert_eq!(window_trip_chance(1.5, 10, 0.5), None);
        assert_eq!(window_trip_chance(f64::NAN, 10, 0.5), None);
        assert_eq!(window_trip_chance(0.1, 10, 0.0), None);
        assert_eq!(window_trip_chance(0.1, 10, 1.5), None);
        assert_eq!(window_trip_chance(0.1, 10, f32::NAN), None);
        assert_eq!(window_trip_chance(0.1, 0, 0.5), None);
        assert_eq!(window_trip_chance(0.1, MAX_SIZING_CALLS + 1, 0.5), None);
        assert!(window_trip_chance(0.1, MAX_SIZING_CALLS, 0.5).is_some());
        assert_eq!(first_fill_trip_chance(0.1, 10, 0, 0.5), None);
        assert_eq!(first_fill_trip_chance(0.1, 10, 11, 0.5), None);
    }

    /// Every figure of the module docs' table is what the functions give.
    #[test]
    fn the_table_in_the_docs_is_what_the_functions_give() {
        let docs = include_str!("sizing.rs");
        for baseline in [1u32, 5, 10, 20, 35] {
            let p = f64::from(baseline) / 100.0;
            let mut row = format!("//! | {:<8} |", format!("{baseline} %"));
            for (window, minimum) in [(20, 10), (100, 20), (100, 50)] {
                let fill = first_fill_trip_chance(p, window, minimum, 0.5).expect("in range");
                let tail = window_trip_chance(p, window, 0.5).expect("in range");
                let cell = format!("{fill:.1e} ({tail:.1e})");
                let width = if window == 20 { 25 } else { 26 };
                row.push_str(&format!(" {cell:<width$} |"));
            }
            assert!(docs.contains(&row), "the docs lack the row\n{row}");
        }
        let fill = first_fill_trip_chance(0.35, 20, 10, 0.6).expect("in range");
        let tail = window_trip_chance(0.35, 20, 0.6).expect("in range");
        let issue: String = format!(
            "{:.0} % while the window first fills, {:.1} % per evaluation",
            fill * 100.0,
            tail * 100.0
        );
        assert!(docs.contains(&issue), "{issue}");
    }
}
