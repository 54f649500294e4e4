//! Picks the board from the target (`cfg(board = ..)`), puts its memory map (as `memory.x`) and
//! `device.x` where the linker finds them and passes the linker scripts: `link.x` from
//! cortex-m-rt always, `defmt.x` only with the `defmt` feature.
//!
//! | Target | Board | Memory map |
//! |--------|-------|------------|
//! | `thumbv7em-none-eabihf` | `mps2_an386` (Cortex-M4F) | `memory-mps2-an386.x` |
//! | `thumbv6m-none-eabi` | `microbit` (nRF51, Cortex-M0) | `memory-microbit.x` |

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(board, values(\"mps2_an386\", \"microbit\"))");
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let (board, memory) = match target.as_str() {
        "thumbv7em-none-eabihf" => ("mps2_an386", "memory-mps2-an386.x"),
        "thumbv6m-none-eabi" => ("microbit", "memory-microbit.x"),
        other => {
            println!(
                "cargo::error=no board for target {other}: build for thumbv7em-none-eabihf \
                 (mps2-an386) or thumbv6m-none-eabi (microbit)"
            );
            return;
        }
    };
    println!("cargo::rustc-cfg=board=\"{board}\"");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(memory, out.join("memory.x")).expect("the memory map is copied to OUT_DIR");
    fs::copy("device.x", out.join("device.x")).expect("device.x is copied to OUT_DIR");
    println!("cargo::rustc-link-search={}", out.display());
    println!("cargo::rerun-if-changed={memory}");
    println!("cargo::rerun-if-changed=device.x");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-link-arg-bins=-Tlink.x");
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo::rustc-link-arg-bins=-Tdefmt.x");
    }
}
