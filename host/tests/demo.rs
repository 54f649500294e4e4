//! `rustkernel demo`, run as a new user runs it (a child process): its final health table never
//! contradicts a breaker. Seeds 1 and 2 here; the closing note of issue 26 ran 1 to 20.

#![allow(clippy::panic)] // tests fail loudly

use std::process::Command;

/// The status a kernel component must show for its breaker's state.
fn expected(breaker: &str) -> &'static str {
    match breaker {
        "closed" | "metrics_only" | "disabled" => "healthy",
        "half_open" => "degraded",
        _ => "unhealthy",
    }
}

fn final_table_agrees(seed: u64) {
    let output = Command::new(env!("CARGO_BIN_EXE_rustkernel"))
        .args(["demo", "--seed", &seed.to_string()])
        .output()
        .expect("the demo runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "seed {seed}: {output:?}");
    let table = text
        .split("\nHealth: ")
        .nth(1)
        .unwrap_or_else(|| panic!("seed {seed}: no final health table in {text}"));
    let kernels: Vec<(&str, &str, &str)> = table
        .lines()
        .filter(|line| line.starts_with("kernel/"))
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default();
            let status = words.next().unwrap_or_default();
            let breaker = line
                .split("breaker ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_default();
            (name, status, breaker)
        })
        .collect();
    assert_eq!(kernels.len(), 2, "seed {seed}: {table}");
    for (name, status, breaker) in kernels {
        assert_eq!(
            status,
            expected(breaker),
            "seed {seed}: {name} is {status} with its breaker {breaker}:\n{table}"
        );
    }
}

#[test]
fn the_demos_final_table_agrees_with_the_breakers_seed_1() {
    final_table_agrees(1);
}

#[test]
fn the_demos_final_table_agrees_with_the_breakers_seed_2() {
    final_table_agrees(2);
}
