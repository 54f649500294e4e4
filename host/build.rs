//! Builds a mutant of the service for the deterministic simulation when `SIM_MUTANT` names one
//! (`SIM_MUTANT=device_faults_to_kernel cargo test -p rustkernel-host --test sim`): the host
//! crate alone is rebuilt with `--cfg sim_mutant="NAME"`, its dependencies are not (as they
//! would be with `RUSTFLAGS`). Unset, the build is the production one.

fn main() {
    println!("cargo::rerun-if-env-changed=SIM_MUTANT");
    println!("cargo::rerun-if-changed=build.rs");
    if let Ok(name) = std::env::var("SIM_MUTANT")
        && !name.is_empty()
    {
        println!("cargo::rustc-cfg=sim_mutant=\"{name}\"");
        println!("cargo::warning=rustkernel-host built as the simulation's mutant {name:?}");
    }
}
