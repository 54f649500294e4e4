//! `rustkernel serve`: runs the service until SIGTERM or SIGINT, then drains and exits 0.

use std::process::ExitCode;

use crate::config::ServiceConfig;
use crate::service;

/// Runs the service with `config` on a multi-threaded runtime.
#[must_use]
pub fn run(config: ServiceConfig) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Kernels run on at most `blocking_threads`; health checks and the rest get more.
        .max_blocking_threads(config.runtime.blocking_threads + 16)
        .thread_name("rustkernel")
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            super::eprint(format_args!(
                "rustkernel: cannot start the runtime: {error}"
            ));
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let mut running = match service::start(config).await {
            Ok(running) => running,
            Err(error) => {
                super::eprint(format_args!("rustkernel: {error}"));
                return ExitCode::from(1);
            }
        };
        tracing::info!(address = %running.local_addr(), "rustkernel serve: listening");
        let handle = running.shutdown_handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal: readiness is 503, draining in-flight requests");
            handle.begin();
        });
        match running.wait().await {
            Ok(()) => {
                tracing::info!("rustkernel serve: stopped");
                ExitCode::SUCCESS
            }
            Err(error) => {
                super::eprint(format_args!("rustkernel: {error}"));
                ExitCode::from(1)
            }
        }
    })
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
