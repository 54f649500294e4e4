//! The deadline [`Layer`].

use rustkernel_core::error::{ConfigError, valid_or_panic};
use rustkernel_core::resilience::TimeoutConfig;
use tower_layer::Layer;

use super::{DeadlineService, DefaultTiming};

/// Wraps services in a [`DeadlineService`] that gives every request a deadline from a
/// [`TimeoutConfig`].
#[derive(Clone, Debug)]
pub struct DeadlineLayer<X = DefaultTiming> {
    config: TimeoutConfig,
    timing: X,
}

impl DeadlineLayer<DefaultTiming> {
    /// A layer giving each request `config`'s default timeout, counted from the call.
    ///
    /// # Errors
    /// The error of [`TimeoutConfig::validate`].
    pub fn try_new(config: TimeoutConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            timing: DefaultTiming,
        })
    }

    /// A layer giving each request `config`'s default timeout, counted from the call.
    ///
    /// # Panics
    /// When `config` is invalid, with the message of its [`ConfigError`]; use
    /// [`try_new`](Self::try_new) to get the error instead.
    #[must_use]
    #[track_caller]
    pub fn new(config: TimeoutConfig) -> Self {
        valid_or_panic(Self::try_new(config), "timeout configuration")
    }
}

impl<X> DeadlineLayer<X> {
    /// Reads each request's own timeout and enqueue instant with `timing` (a
    /// [`TimingOf`](super::TimingOf), such as a closure `Fn(&Req) -> RequestTiming` reading a
    /// `grpc-timeout` header and a queue timestamp).
    #[must_use]
    pub fn timing<Y>(self, timing: Y) -> DeadlineLayer<Y> {
        DeadlineLayer {
            config: self.config,
            timing,
        }
    }

    /// The timeout configuration.
    #[must_use]
    pub fn config(&self) -> &TimeoutConfig {
        &self.config
    }
}

impl<S, X: Clone> Layer<S> for DeadlineLayer<X> {
    type Service = DeadlineService<S, X>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService::new(inner, self.config, self.timing.clone())
    }
}
