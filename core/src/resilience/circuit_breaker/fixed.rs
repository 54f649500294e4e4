//! A breaker configuration that is a type, for firmware (see [`FixedConfig`]).

use core::borrow::Borrow;
use core::fmt;
use core::marker::PhantomData;

use super::{CircuitBreaker, CircuitBreakerConfig, SlidingWindow, check_untimed};
use crate::error::ConfigError;

/// A breaker configuration known when the program is compiled, named by a type.
pub trait ConstBreakerConfig {
    /// The configuration.
    const CONFIG: CircuitBreakerConfig;
}

/// `T`'s configuration as a zero-sized value: a breaker over it reads
/// [`T::CONFIG`](ConstBreakerConfig::CONFIG), a constant.
///
/// A breaker in a `static` that holds its configuration (or a reference to one) reads it from
/// memory the breaker can change, so the compiler keeps the code of every mode the
/// configuration could ask for. Over `FixedConfig<T>`, a zero-sized type, every read is
/// [`T::CONFIG`](ConstBreakerConfig::CONFIG), a constant: what it turns off (a failure-rate
/// threshold of `None`, no slow calls, no open backoff) is left out of the program. On the
/// Cortex-M4F firmware example that is 884 B of flash, 1,056 B on the Cortex-M0.
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::resilience::{
///     CircuitBreaker, CircuitBreakerConfig, ConstBreakerConfig, FixedConfig, NoWindow,
/// };
///
/// struct Accelerator;
///
/// impl ConstBreakerConfig for Accelerator {
///     const CONFIG: CircuitBreakerConfig = CircuitBreakerConfig {
///         failure_threshold: 3,
///         timeout: Duration::from_millis(60),
///         ..CircuitBreakerConfig::DEFAULT
///     };
/// }
///
/// // Checked when the program is compiled, like `try_const`.
/// const BREAKER: CircuitBreaker<FixedConfig<Accelerator>> =
///     match CircuitBreaker::try_const_fixed(NoWindow) {
///         Ok(breaker) => breaker,
///         Err(_) => panic!("invalid breaker configuration"),
///     };
/// assert_eq!(BREAKER.config().failure_threshold, 3);
/// assert_eq!(size_of::<FixedConfig<Accelerator>>(), 0);
/// ```
pub struct FixedConfig<T>(PhantomData<fn() -> T>);

impl<T> FixedConfig<T> {
    /// The configuration of `T`.
    #[must_use]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

// By hand: derives would ask `T: Clone` and so on of a type that is only a name.
impl<T> Clone for FixedConfig<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for FixedConfig<T> {}

impl<T> Default for FixedConfig<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for FixedConfig<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FixedConfig")
    }
}

impl<T: ConstBreakerConfig> Borrow<CircuitBreakerConfig> for FixedConfig<T> {
    fn borrow(&self) -> &CircuitBreakerConfig {
        const { &T::CONFIG }
    }
}

impl<T: ConstBreakerConfig, W: SlidingWindow> CircuitBreaker<FixedConfig<T>, W> {
    /// [`try_const`](CircuitBreaker::try_const) for a breaker over [`FixedConfig<T>`]: checks
    /// [`T::CONFIG`](ConstBreakerConfig::CONFIG) (in a `const` or `static`, when the program
    /// is compiled).
    ///
    /// # Errors
    /// As [`try_with_window`](Self::try_with_window).
    pub const fn try_const_fixed(window: W) -> Result<Self, ConfigError> {
        Self::closed_if(check_untimed::<W>(&T::CONFIG), FixedConfig::new(), window)
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::*;
    use crate::error::{ConfigField, ErrorKind};
    use crate::resilience::{CircuitState, NoWindow};
    use crate::time::Instant;

    struct Three;

    impl ConstBreakerConfig for Three {
        const CONFIG: CircuitBreakerConfig = CircuitBreakerConfig {
            failure_threshold: 3,
            timeout: Duration::from_millis(60),
            ..CircuitBreakerConfig::DEFAULT
        };
    }

    struct Invalid;

    impl ConstBreakerConfig for Invalid {
        const CONFIG: CircuitBreakerConfig = CircuitBreakerConfig {
            failure_threshold: 0,
            ..CircuitBreakerConfig::DEFAULT
        };
    }

    #[test]
    fn a_fixed_configuration_breaker_is_the_breaker_of_its_configuration() {
        let mut fixed = CircuitBreaker::<FixedConfig<Three>, _>::try_const_fixed(NoWindow)
            .expect("a valid configuration");
        let mut owned = CircuitBreaker::new(Three::CONFIG);
        assert_eq!(fixed.config(), owned.config());
        assert_eq!(size_of::<FixedConfig<Three>>(), 0);
        let mut now = Instant::ZERO;
        for _ in 0..4 {
            now = now.saturating_add(Duration::from_millis(1));
            let outcomes = [&mut fixed as &mut dyn Fail, &mut owned].map(|b| b.fail(now));
            assert_eq!(outcomes[0], outcomes[1]);
        }
        assert_eq!(fixed.state(), CircuitState::Open);
        assert_eq!(owned.state(), CircuitState::Open);
    }

    #[test]
    fn an_invalid_fixed_configuration_is_refused() {
        let refused = CircuitBreaker::<FixedConfig<Invalid>, _>::try_const_fixed(NoWindow);
        assert!(matches!(
            refused,
            Err(ConfigError::Zero(ConfigField::FailureThreshold))
        ));
    }

    /// A failed call on either breaker: whether it was admitted, and the state after.
    trait Fail {
        fn fail(&mut self, now: Instant) -> (bool, CircuitState);
    }

    impl<C: Borrow<CircuitBreakerConfig>> Fail for CircuitBreaker<C> {
        fn fail(&mut self, now: Instant) -> (bool, CircuitState) {
            let admitted = match self.try_acquire(now) {
                Ok(permit) => {
                    let _ = self.on_failure(permit, ErrorKind::Transient, now);
                    true
                }
                Err(_) => false,
            };
            (admitted, self.state())
        }
    }
}
