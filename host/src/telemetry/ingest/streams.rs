//! Reading the sources: followed files, any byte stream, and TCP listeners (their
//! connections in `tcp`); each stream's items go to [`EdgeFleet::ingest`].

#[allow(clippy::wildcard_imports)] // the fleet's types and imports, split by idea
use super::*;

/// How long a followed file waits before looking for more bytes.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// Binds the TCP sources (so a bad address fails the start) and spawns a task per source,
/// plus the silence watcher. Sources start reading once `ready` resolves (the service's first
/// round of health checks is over, so no edge check holds up startup).
///
/// # Errors
/// The source and the I/O error when a TCP source cannot be bound.
pub async fn start(
    fleet: &Arc<EdgeFleet>,
    ready: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Vec<JoinHandle<()>>, (TelemetrySource, std::io::Error)> {
    let mut listeners = Vec::new();
    for source in &fleet.config.sources {
        if let SourceKind::Tcp(address) = source.kind {
            let listener = TcpListener::bind(address)
                .await
                .map_err(|error| (source.clone(), error))?;
            let bound = listener
                .local_addr()
                .map_err(|error| (source.clone(), error))?;
            tracing::info!(source = %source, %bound, "telemetry: listening for edge devices");
            lock(&fleet.listeners).push((source.clone(), bound));
            listeners.push((source.clone(), bound, listener));
        }
    }
    let mut tasks = vec![tokio::spawn(EdgeFleet::watch_silence(fleet.clone()))];
    let (go, wait) = tokio::sync::watch::channel(false);
    tasks.push(tokio::spawn(async move {
        ready.await;
        let _ = go.send(true);
    }));
    for (source, bound, listener) in listeners {
        let fleet = fleet.clone();
        let mut wait = wait.clone();
        tasks.push(tokio::spawn(async move {
            let _ = wait.wait_for(|go| *go).await;
            super::tcp::accept(fleet, source, bound, listener).await;
        }));
    }
    for source in fleet.config.sources.clone() {
        let fleet = fleet.clone();
        let mut wait = wait.clone();
        match source.kind.clone() {
            SourceKind::Tcp(_) => {}
            SourceKind::Stdin => tasks.push(tokio::spawn(async move {
                let _ = wait.wait_for(|go| *go).await;
                let label = source.to_string();
                read_stream(&fleet, &label, source.framing, tokio::io::stdin()).await;
                tracing::info!(source = %label, "telemetry: standard input ended");
            })),
            SourceKind::File(path) => tasks.push(tokio::spawn(async move {
                let _ = wait.wait_for(|go| *go).await;
                follow(&fleet, &source, &path).await;
            })),
        }
    }
    Ok(tasks)
}

/// Reads `input` to its end into the fleet.
pub async fn read_stream(
    fleet: &EdgeFleet,
    source: &str,
    framing: SourceFraming,
    mut input: impl AsyncRead + Unpin,
) {
    let mut scanner = FrameScanner::new(framing);
    let mut stream = StreamContext::new(source);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match input.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => scanner.push(buf.get(..n).unwrap_or_default(), &mut |item| {
                fleet.ingest(&mut stream, item);
            }),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::warn!(%source, %error, "telemetry: read failed; stream closed");
                break;
            }
        }
    }
    scanner.finish(&mut |item| fleet.ingest(&mut stream, item));
}

/// Reads a file from its start and follows it as it grows; a truncated file is read again from
/// its start, a replaced one (another inode at the path) is reopened.
async fn follow(fleet: &EdgeFleet, source: &TelemetrySource, path: &Path) {
    let label = source.to_string();
    let mut warned = false;
    loop {
        let file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(error) => {
                if !warned {
                    tracing::warn!(source = %label, %error, "telemetry: cannot open; retrying");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        warned = false;
        follow_open(fleet, &label, source.framing, path.to_owned(), file).await;
    }
}

/// Follows one opened file until it is replaced or truncated.
async fn follow_open(
    fleet: &EdgeFleet,
    label: &str,
    framing: SourceFraming,
    path: PathBuf,
    mut file: tokio::fs::File,
) {
    let identity = |meta: &std::fs::Metadata| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            (meta.dev(), meta.ino())
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            (0u64, 0u64)
        }
    };
    let opened = file.metadata().await.map(|meta| identity(&meta)).ok();
    let mut scanner = FrameScanner::new(framing);
    let mut stream = StreamContext::new(label);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut position = 0u64;
    loop {
        match file.read(&mut buf).await {
            Ok(0) => {
                tokio::time::sleep(FOLLOW_INTERVAL).await;
                let now = tokio::fs::metadata(&path).await.ok();
                let replaced = now.as_ref().map(&identity) != opened;
                let truncated = now.as_ref().is_some_and(|meta| meta.len() < position);
                if replaced || truncated {
                    tracing::info!(source = %label, replaced, truncated, "telemetry: file changed; reading it from its start");
                    scanner.finish(&mut |item| fleet.ingest(&mut stream, item));
                    return;
                }
            }
            Ok(n) => {
                position += n as u64;
                scanner.push(buf.get(..n).unwrap_or_default(), &mut |item| {
                    fleet.ingest(&mut stream, item);
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::warn!(source = %label, %error, "telemetry: read failed; reopening");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        }
    }
}
