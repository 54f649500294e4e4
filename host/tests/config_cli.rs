//! `rustkernel config show` and `rustkernel config check` as a user runs them.
#![allow(clippy::panic)] // tests fail loudly

mod common;

use common::{TempDir, run_cli};
use rustkernel_host::config::{ConfigFile, Preset, ServiceConfig};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn config_show_prints_toml_that_parses_back_to_the_same_config() {
    for (args, preset) in [
        (&["config", "show"][..], Preset::Production),
        (
            &["config", "show", "--preset", "development"],
            Preset::Development,
        ),
    ] {
        let output = run_cli(args);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let text = stdout(&output);
        let again = ConfigFile::parse(&text)
            .unwrap_or_else(|error| panic!("{args:?} does not parse back ({error}): {text}"))
            .resolve(None)
            .expect("valid");
        let expected = ServiceConfig::preset(preset).expect("a preset");
        assert_eq!(again.to_file(), expected.to_file(), "{text}");
        for section in [
            "[server]",
            "[limits]",
            "[resilience.circuit_breaker]",
            "[runtime]",
        ] {
            assert!(text.contains(section), "{section} missing: {text}");
        }
    }

    let dir = TempDir::new("config-show");
    let file = dir.write(
        "service.toml",
        &common::toml_with("[kernels.\"graph/pagerank\".faults]\nerror_rate = 0.25\nseed = 9"),
        0o600,
    );
    let output = run_cli(&["config", "show", "--file", file.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let shown = ConfigFile::parse(&stdout(&output))
        .expect("parses back")
        .resolve(None)
        .expect("valid");
    let loaded = ServiceConfig::load(&file).expect("valid");
    assert_eq!(shown.to_file(), loaded.to_file());
    assert_eq!(
        shown
            .faults
            .get("graph/pagerank")
            .map(|f| (f.error_rate, f.seed)),
        Some((0.25, 9))
    );
}

#[test]
fn config_check_names_the_field_and_exits_1() {
    let dir = TempDir::new("config-check");
    let cases = [
        (
            "[resilience.circuit_breaker]\nfailure_threshold = 0\n",
            "resilience.circuit_breaker.failure_threshold",
        ),
        ("[limits]\nmax_concurrency = 0\n", "limits.max_concurrency"),
        ("[server]\nport = 8080\n", "port"),
        (
            "[resilience.timeout]\ndefault_timeout = \"soon\"\n",
            "default_timeout",
        ),
        (
            "[kernels.\"graph/pagerank\".faults]\nerror_rate = 2.0\n",
            "kernels.\"graph/pagerank\".faults.error_rate",
        ),
        (
            "[runtime]\nblocking_threads = 0\n",
            "runtime.blocking_threads",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let path = dir.write(&format!("bad{i}.toml"), text, 0o600);
        let output = run_cli(&["config", "check", path.to_str().expect("UTF-8")]);
        assert_eq!(output.status.code(), Some(1), "{text}: {output:?}");
        let message = stderr(&output);
        assert!(message.contains(field), "{message} should name {field}");
        assert!(stdout(&output).is_empty(), "{output:?}");
    }

    let missing = dir.path().join("missing.toml");
    let output = run_cli(&["config", "check", missing.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stderr(&output).contains("missing.toml"), "{output:?}");

    let good = dir.write("good.toml", &common::toml_with(""), 0o600);
    let output = run_cli(&["config", "check", good.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).trim_end().ends_with(": ok"), "{output:?}");
}
