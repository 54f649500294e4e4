//! A TCP source: the listener's accept loop and one task per connection, so that a network
//! that misbehaves cannot wedge the ingest.
//!
//! - A source holds at most `max_connections` connections at once.
//! - A connection that sends nothing for `idle_timeout` is closed (a device that lost power or
//!   a route keeps no slot forever; one that comes back connects again).
//! - A connection that finds every slot taken replaces the quietest connection from the same
//!   address (IP: a reconnecting device comes from another port), whose device most likely
//!   reconnected; from an address with no connection it is refused. A source that devices
//!   share through one address (a serial-to-TCP bridge) keeps all of them while slots are free.
//!
//! Each closing the service decides is counted in `rustkernel_edge_connections_closed_total`
//! by `reason` (`refused`, `replaced`, `idle`) and logged; open connections are
//! `rustkernel_edge_connections`.

use std::collections::HashMap;

use tokio::net::TcpStream;
use tokio::sync::oneshot;

#[allow(clippy::wildcard_imports)] // the fleet's types and imports, split by idea
use super::*;

/// Why the service closed a connection (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closed {
    /// Every slot was taken and none by its address.
    Refused,
    /// A newer connection from its address took its slot.
    Replaced,
    /// It sent nothing for `idle_timeout`.
    Idle,
}

impl Closed {
    pub(super) const fn label(self) -> &'static str {
        match self {
            Closed::Refused => "refused",
            Closed::Replaced => "replaced",
            Closed::Idle => "idle",
        }
    }
}

/// One open connection, as the accept loop sees it.
#[derive(Debug)]
struct Open {
    peer: SocketAddr,
    /// When it last sent bytes (or connected).
    heard: Instant,
    /// Dropped or sent to close it.
    close: oneshot::Sender<()>,
}

/// What became of a new connection.
#[derive(Debug)]
enum Admission {
    /// It has a free slot.
    Open(u64),
    /// It took the slot of the quietest connection from its address, which is to be closed.
    Replaced(u64, Open),
    /// Every slot is taken, none by its address.
    Refused,
}

/// The open connections of one TCP source: at most `max` at once.
#[derive(Debug)]
struct Connections {
    max: usize,
    next: u64,
    open: HashMap<u64, Open>,
}

impl Connections {
    fn new(max: usize) -> Self {
        Self {
            max,
            next: 0,
            open: HashMap::new(),
        }
    }

    fn admit(&mut self, peer: SocketAddr, now: Instant, close: oneshot::Sender<()>) -> Admission {
        let replaced = if self.open.len() < self.max {
            None
        } else {
            let quietest = self
                .open
                .iter()
                .filter(|(_, open)| open.peer.ip() == peer.ip())
                .min_by_key(|(id, open)| (open.heard, **id))
                .map(|(id, _)| *id);
            match quietest.and_then(|id| self.open.remove(&id)) {
                Some(old) => Some(old),
                None => return Admission::Refused,
            }
        };
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.open.insert(
            id,
            Open {
                peer,
                heard: now,
                close,
            },
        );
        match replaced {
            Some(old) => Admission::Replaced(id, old),
            None => Admission::Open(id),
        }
    }

    fn heard(&mut self, id: u64, now: Instant) {
        if let Some(open) = self.open.get_mut(&id) {
            open.heard = now;
        }
    }

    fn closed(&mut self, id: u64) {
        self.open.remove(&id);
    }
}

/// Everything a connection task shares with its source's accept loop.
#[derive(Clone)]
struct Source {
    fleet: Arc<EdgeFleet>,
    label: String,
    framing: SourceFraming,
    connections: Arc<Mutex<Connections>>,
}

impl Source {
    fn closed(&self, reason: Closed) {
        self.fleet
            .metrics
            .connections_closed
            .get_or_create(&ConnectionLabels {
                source: self.label.clone(),
                reason: reason.label(),
            })
            .inc();
    }

    fn set_open(&self, connections: &Connections) {
        self.fleet
            .metrics
            .connections
            .get_or_create(&SourceLabels {
                source: self.label.clone(),
            })
            .set(i64::try_from(connections.open.len()).unwrap_or(i64::MAX));
    }
}

/// Accepts connections on `listener` until the task is aborted.
pub(super) async fn accept(
    fleet: Arc<EdgeFleet>,
    source: TelemetrySource,
    bound: SocketAddr,
    listener: TcpListener,
) {
    let label = TelemetrySource {
        kind: SourceKind::Tcp(bound),
        framing: source.framing,
    }
    .to_string();
    let source = Source {
        connections: Arc::new(Mutex::new(Connections::new(fleet.config.max_connections))),
        fleet,
        label,
        framing: source.framing,
    };
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(source = %source.label, %error, "telemetry: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (close, closing) = oneshot::channel();
        let admission = {
            let mut connections = lock(&source.connections);
            let admission = connections.admit(peer, Instant::now(), close);
            source.set_open(&connections);
            admission
        };
        let id = match admission {
            Admission::Open(id) => id,
            Admission::Replaced(id, old) => {
                tracing::info!(
                    source = %source.label,
                    %peer,
                    replaced = %old.peer,
                    "telemetry: max_connections are open; the quietest from the same address \
                     is closed for the new one"
                );
                source.closed(Closed::Replaced);
                drop(old.close);
                id
            }
            Admission::Refused => {
                tracing::warn!(
                    source = %source.label,
                    %peer,
                    max_connections = source.fleet.config.max_connections,
                    "telemetry: connection refused, max_connections are open"
                );
                source.closed(Closed::Refused);
                drop(socket);
                continue;
            }
        };
        tracing::info!(source = %source.label, %peer, "telemetry: edge connection");
        let source = source.clone();
        tokio::spawn(async move {
            let end = read_connection(&source, id, socket, closing).await;
            {
                let mut connections = lock(&source.connections);
                connections.closed(id);
                source.set_open(&connections);
            }
            if let Some(reason) = end {
                source.closed(reason);
            }
            tracing::info!(
                source = %source.label,
                %peer,
                reason = end.map_or("ended", Closed::label),
                "telemetry: edge connection closed"
            );
        });
    }
}

/// Reads one connection into the fleet until it ends, fails, idles out or is replaced; says
/// why when the service closed it and the accept loop did not count it yet.
async fn read_connection(
    source: &Source,
    id: u64,
    mut socket: TcpStream,
    mut closing: oneshot::Receiver<()>,
) -> Option<Closed> {
    let idle = source.fleet.config.idle_timeout;
    let mut scanner = FrameScanner::new(source.framing);
    let mut stream = StreamContext::new(&source.label);
    let mut buf = vec![0u8; READ_CHUNK];
    let end = loop {
        tokio::select! {
            // Counted by the accept loop, which replaced it.
            _ = &mut closing => break None,
            read = tokio::time::timeout(idle, socket.read(&mut buf)) => match read {
                Err(_elapsed) => {
                    tracing::info!(
                        source = %source.label,
                        idle_timeout = ?idle,
                        "telemetry: edge connection idle; closing it"
                    );
                    break Some(Closed::Idle);
                }
                Ok(Ok(0)) => break None,
                Ok(Ok(n)) => {
                    lock(&source.connections).heard(id, Instant::now());
                    scanner.push(buf.get(..n).unwrap_or_default(), &mut |item| {
                        source.fleet.ingest(&mut stream, item);
                    });
                }
                Ok(Err(error)) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => {
                    tracing::warn!(
                        source = %source.label,
                        %error,
                        "telemetry: read failed; stream closed"
                    );
                    break None;
                }
            },
        }
    };
    scanner.finish(&mut |item| source.fleet.ingest(&mut stream, item));
    end
}

#[cfg(test)]
#[allow(clippy::panic, clippy::indexing_slicing)] // a test fails by panicking
mod tests {
    use super::*;
    use rustkernel_core::resilience::HealthStatus;
    use rustkernel_core::telemetry::MAX_FRAME_LEN;
    use tokio::io::AsyncWriteExt;

    /// A fleet with one TCP source on 127.0.0.1:0; its address and label.
    async fn listening(
        config: TelemetryConfig,
    ) -> (Arc<EdgeFleet>, SocketAddr, Vec<JoinHandle<()>>) {
        let probe = HealthProbe::new(HealthProbeConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            failure_threshold: 1,
            success_threshold: 1,
        });
        let config = TelemetryConfig {
            sources: vec!["tcp://127.0.0.1:0".parse().expect("a source")],
            ..config
        };
        let fleet = EdgeFleet::new(config, probe, EdgeMetrics::default());
        let tasks = start(&fleet, async {}).await.expect("binds");
        let address = fleet.listen_addrs()[0];
        settle().await;
        (fleet, address, tasks)
    }

    /// A connection to `to` from the loopback address `ip` (127.0.0.1, 127.0.0.2, ...).
    async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::new(ip.parse().expect("an IP"), 0))
            .expect("binds");
        let stream = socket.connect(to).await.expect("connects");
        settle().await;
        stream
    }

    /// Lets the accept loop and the connection tasks catch up (virtual time).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    /// Whether the service closed its end of `stream` within `within` (virtual time).
    async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(within, stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(_)) => panic!("the service sent bytes"),
            Err(_) => false,
        }
    }

    fn count(fleet: &EdgeFleet, address: SocketAddr, reason: Closed) -> u64 {
        fleet
            .metrics
            .connections_closed
            .get_or_create(&ConnectionLabels {
                source: format!("tcp://{address}"),
                reason: reason.label(),
            })
            .get()
    }

    fn open(fleet: &EdgeFleet, address: SocketAddr) -> i64 {
        fleet
            .metrics
            .connections
            .get_or_create(&SourceLabels {
                source: format!("tcp://{address}"),
            })
            .get()
    }

    fn wire(frame: &TelemetryFrame) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        rustkernel_core::telemetry::encode_frame(frame, &mut buf)
            .expect("fits")
            .to_vec()
    }

    const HELLO: TelemetryFrame = TelemetryFrame::Hello {
        version: rustkernel_core::telemetry::VERSION,
        device: 0x0a38_6001,
        at_us: 0,
    };

    fn health(at_us: u64) -> TelemetryFrame {
        TelemetryFrame::Health {
            component: 0,
            status: HealthStatus::Healthy,
            at_us,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_idle_timeout_and_a_talking_one_is_not() {
        let (fleet, address, _tasks) = listening(TelemetryConfig {
            idle_timeout: Duration::from_secs(30),
            ..TelemetryConfig::default()
        })
        .await;
        let mut silent = connect_from("127.0.0.1", address).await;
        let mut talking = connect_from("127.0.0.1", address).await;
        assert_eq!(open(&fleet, address), 2);
        talking.write_all(&wire(&HELLO)).await.expect("writes");
        for at in 1..=3 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            talking.write_all(&wire(&health(at))).await.expect("writes");
        }
        // 30 s and a little after connecting: the silent one is gone, the talking one is not.
        assert!(closed(&mut silent, Duration::from_secs(1)).await);
        assert!(!closed(&mut talking, Duration::from_secs(1)).await);
        assert_eq!(count(&fleet, address, Closed::Idle), 1);
        assert_eq!(open(&fleet, address), 1);
        assert_eq!(fleet.devices(), vec!["0a386001".to_owned()]);
        // Once it falls silent too, it goes the same way.
        assert!(!closed(&mut talking, Duration::from_secs(27)).await);
        assert!(closed(&mut talking, Duration::from_secs(3)).await);
        assert_eq!(count(&fleet, address, Closed::Idle), 2);
        settle().await;
        assert_eq!(open(&fleet, address), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_source_lets_a_connection_replace_the_quietest_from_its_address() {
        let (fleet, address, _tasks) = listening(TelemetryConfig {
            max_connections: 2,
            idle_timeout: Duration::from_secs(60),
            ..TelemetryConfig::default()
        })
        .await;
        // A device's old connection, then another device's behind the same address (a bridge).
        let mut stale = connect_from("127.0.0.2", address).await;
        let mut other = connect_from("127.0.0.2", address).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        other.write_all(b"boot log\n").await.expect("writes");
        settle().await;

        // Full: a connection from an address with none is refused...
        let mut stranger = connect_from("127.0.0.1", address).await;
        assert!(closed(&mut stranger, Duration::from_millis(100)).await);
        assert_eq!(count(&fleet, address, Closed::Refused), 1);
        // ... one from the full address takes the quietest one's slot.
        let mut back = connect_from("127.0.0.2", address).await;
        assert!(closed(&mut stale, Duration::from_millis(100)).await);
        assert!(!closed(&mut other, Duration::from_millis(100)).await);
        assert_eq!(count(&fleet, address, Closed::Replaced), 1);
        assert_eq!(open(&fleet, address), 2);
        // The new connection is read like any other.
        back.write_all(&wire(&HELLO)).await.expect("writes");
        settle().await;
        assert!(!closed(&mut back, Duration::from_millis(100)).await);
        assert_eq!(fleet.devices(), vec!["0a386001".to_owned()]);
        assert_eq!(count(&fleet, address, Closed::Idle), 0);
    }

    fn peer(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn a_full_source_replaces_the_quietest_from_the_same_address_or_refuses() {
        let mut connections = Connections::new(3);
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let admit = |connections: &mut Connections, who: &str, s| {
            let (close, _) = oneshot::channel();
            connections.admit(peer(who), at(s), close)
        };
        for (who, s) in [
            ("10.0.0.1:4000", 0),
            ("10.0.0.1:4001", 1),
            ("10.0.0.2:4000", 2),
        ] {
            assert!(matches!(
                admit(&mut connections, who, s),
                Admission::Open(_)
            ));
        }
        // The first has talked since the second connected: the second is the quietest.
        connections.heard(0, at(5));
        assert!(matches!(
            admit(&mut connections, "10.0.0.3:4000", 6),
            Admission::Refused
        ));
        match admit(&mut connections, "10.0.0.1:4002", 6) {
            Admission::Replaced(3, old) => assert_eq!(old.peer, peer("10.0.0.1:4001")),
            other => panic!("{other:?}"),
        }
        assert_eq!(connections.open.len(), 3);
        // A closed connection frees its slot for anyone.
        connections.closed(2);
        assert!(matches!(
            admit(&mut connections, "10.0.0.3:4000", 7),
            Admission::Open(4)
        ));
        // Closing twice (replaced, then its task ends) is harmless.
        connections.closed(2);
        assert_eq!(connections.open.len(), 3);
    }
}
