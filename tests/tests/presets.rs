//! Every preset survives postcard (the wire and firmware format) and JSON (a human format),
//! validates, and partial human configs fill in from the production preset.

use rustkernel_core::resilience::{
    CircuitBreakerConfig, HealthCheckConfig, RecoveryPolicy, ResilienceConfig, RetryConfig,
    TimeoutConfig,
};

fn presets() -> [(&'static str, ResilienceConfig); 3] {
    [
        ("production", ResilienceConfig::production()),
        ("development", ResilienceConfig::development()),
        ("default", ResilienceConfig::default()),
    ]
}

#[test]
fn presets_round_trip_through_postcard() {
    for (name, preset) in presets() {
        let mut buf = [0u8; 512];
        let bytes = postcard::to_slice(&preset, &mut buf).expect("fits in 512 bytes");
        let back: ResilienceConfig = postcard::from_bytes(bytes).expect("decodes");
        assert_eq!(back, preset, "{name}");
        assert_eq!(back.validate(), Ok(()), "{name}");
    }
}

#[test]
fn presets_round_trip_through_json() {
    for (name, preset) in presets() {
        let json = serde_json::to_string_pretty(&preset).expect("serializes");
        let back: ResilienceConfig = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, preset, "{name}:\n{json}");
    }
}

#[test]
fn sub_config_presets_round_trip_through_json() {
    let cb = CircuitBreakerConfig::production();
    let json = serde_json::to_string(&cb).expect("json");
    assert_eq!(
        serde_json::from_str::<CircuitBreakerConfig>(&json).expect("parses"),
        cb
    );
    let retry = RetryConfig::production();
    let json = serde_json::to_string(&retry).expect("json");
    assert!(
        json.contains(r#""retryable_errors":["transient","timeout"]"#),
        "{json}"
    );
    assert_eq!(
        serde_json::from_str::<RetryConfig>(&json).expect("parses"),
        retry
    );
    let timeout = TimeoutConfig::production();
    let json = serde_json::to_string(&timeout).expect("json");
    assert_eq!(
        serde_json::from_str::<TimeoutConfig>(&json).expect("parses"),
        timeout
    );
    let health = HealthCheckConfig::production();
    let json = serde_json::to_string(&health).expect("json");
    assert_eq!(
        serde_json::from_str::<HealthCheckConfig>(&json).expect("parses"),
        health
    );
    let recovery = RecoveryPolicy::production();
    let json = serde_json::to_string(&recovery).expect("json");
    assert_eq!(
        serde_json::from_str::<RecoveryPolicy>(&json).expect("parses"),
        recovery
    );
}

#[test]
fn a_partial_human_config_fills_in_from_production() {
    let config: ResilienceConfig =
        serde_json::from_str(r#"{ "retry_max_elapsed": { "secs": 30, "nanos": 0 } }"#)
            .expect("parses");
    assert_eq!(config.retry_max_elapsed.as_secs(), 30);
    assert_eq!(config.circuit_breaker, CircuitBreakerConfig::production());
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn an_invalid_human_config_parses_but_does_not_validate() {
    let config: ResilienceConfig =
        serde_json::from_str(r#"{ "circuit_breaker": { "failure_threshold": 0 } }"#)
            .expect("parses");
    let error = config.validate().expect_err("zero threshold");
    assert_eq!(
        error.to_string(),
        "circuit_breaker.failure_threshold must be greater than zero"
    );
}
