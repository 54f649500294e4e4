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
        // The handlers are installed before the port is bound: a SIGTERM that arrives as soon
        // as the service accepts connections drains it instead of killing the process.
        let signals = Signals::install();
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
            signals.wait().await;
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

/// SIGTERM and SIGINT (Ctrl-C), listened for from [`install`](Self::install) on.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs the handlers (inside the runtime).
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let unix = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Self { unix }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for SIGTERM or SIGINT.
    async fn wait(self) {
        #[cfg(unix)]
        {
            if let Some((mut term, mut int)) = self.unix {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
