//! Every transition of the shared breaker is a `tracing` event with the breaker's name, the
//! state before and the state after.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, Classify};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug)]
struct Failed;
impl Classify for Failed {}

/// What one event carried: its level and its fields as text.
type Recorded = (Level, BTreeMap<String, String>);

/// A subscriber that keeps every event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((*event.metadata().level(), fields));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_an_event_with_name_from_and_to() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let cb = CircuitBreaker::builder(CircuitBreakerConfig {
        failure_threshold: 1,
        success_threshold: 1,
        timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .name("graph/pagerank")
    .build();
    cb.call(|| async { Err::<(), _>(Failed) }).await.ok();
    tokio::time::advance(Duration::from_secs(1)).await;
    cb.call(|| async { Ok::<_, Failed>(()) }).await.ok();
    cb.force_open();
    cb.disable();
    cb.reset();
    // Calls that change nothing log nothing.
    cb.call(|| async { Ok::<_, Failed>(()) }).await.ok();

    let events = recorder
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let seen: Vec<(Level, &str, &str, &str)> = events
        .iter()
        .map(|(level, fields)| {
            let get = |key: &str| fields.get(key).map_or("", String::as_str);
            (*level, get("breaker"), get("from"), get("to"))
        })
        .collect();
    let name = "graph/pagerank";
    assert_eq!(
        seen,
        [
            (Level::WARN, name, "Closed", "Open"),
            (Level::INFO, name, "Open", "HalfOpen"),
            (Level::INFO, name, "HalfOpen", "Closed"),
            (Level::WARN, name, "Closed", "ForcedOpen"),
            (Level::INFO, name, "ForcedOpen", "Disabled"),
            (Level::INFO, name, "Disabled", "Closed"),
        ]
    );
    assert_eq!(cb.stats().transitions, 6);
}
