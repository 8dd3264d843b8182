//! `status-node run --metrics ADDR`: Prometheus metrics (OpenMetrics text, which Prometheus scrapes) over
//! a minimal HTTP/1.1 responder on tokio: `GET /metrics` answers with every metric, anything else 404.
//!
//! The engine's counters (Waku envelopes, pool, mailserver) are read from the node task at each scrape;
//! peers come from the driver's connection table; chat counters are counted from the node's events; the
//! store commit latency is observed on the store thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use status_io_tokio::node::{DroppedEvents, NodeCommand, PeerInfo};
use status_sansio::chat::messenger::Event as ChatEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

type Labels = Vec<(String, String)>;

/// Longest request head read, in bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most scrapes answered at once; connections past it are closed at once.
const MAX_CONCURRENT: usize = 8;

/// The metrics of one node.
pub struct Metrics {
    registry: Registry,
    peers: Family<Labels, Gauge>,
    received: Counter,
    relayed: Counter,
    dropped: Family<Labels, Counter>,
    pool_envelopes: Gauge,
    pool_bytes: Gauge,
    rate_limited: Counter,
    ms_requests: Counter,
    ms_served: Counter,
    chat: Family<Labels, Counter>,
    store_commit: Histogram,
    events_dropped: Counter,
}

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// Raise a counter to an absolute value read from the engine (counters only grow).
fn raise(c: &Counter, to: u64) {
    c.inc_by(to.saturating_sub(c.get()));
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered under the `status_node` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("status_node");
        let m = Metrics {
            peers: Family::default(),
            received: Counter::default(),
            relayed: Counter::default(),
            dropped: Family::default(),
            pool_envelopes: Gauge::default(),
            pool_bytes: Gauge::default(),
            rate_limited: Counter::default(),
            ms_requests: Counter::default(),
            ms_served: Counter::default(),
            chat: Family::default(),
            store_commit: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
            events_dropped: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("peers", "Connected peers by Waku dialect", m.peers.clone());
        registry.register(
            "envelopes_received",
            "Envelopes received from peers (valid, duplicate or invalid)",
            m.received.clone(),
        );
        registry.register("envelopes_relayed", "Envelopes sent to peers", m.relayed.clone());
        registry.register(
            "envelopes_dropped",
            "Envelopes dropped, by reason (duplicate, invalid, expired from the pool)",
            m.dropped.clone(),
        );
        registry.register(
            "pool_envelopes",
            "Envelopes in the pool",
            m.pool_envelopes.clone(),
        );
        registry.register_with_unit(
            "pool",
            "Size of the envelopes in the pool",
            Unit::Bytes,
            m.pool_bytes.clone(),
        );
        registry.register(
            "rate_limited_packets",
            "Packets from peers dropped by the rate limiter",
            m.rate_limited.clone(),
        );
        registry.register(
            "mailserver_requests",
            "History requests received by the mailserver",
            m.ms_requests.clone(),
        );
        registry.register(
            "mailserver_envelopes_served",
            "Envelopes the mailserver sent to requesting peers",
            m.ms_served.clone(),
        );
        registry.register(
            "chat_messages",
            "Chat messages by event (sent, received, delivered, dropped as invalid)",
            m.chat.clone(),
        );
        registry.register_with_unit(
            "store_commit",
            "Time to commit a batch of archived envelopes",
            Unit::Seconds,
            m.store_commit.clone(),
        );
        registry.register(
            "events_dropped",
            "Node events dropped because the application did not take them fast enough",
            m.events_dropped.clone(),
        );
        for d in ["waku", "shh", "none"] {
            m.peers.get_or_create(&label("dialect", d)).set(0);
        }
        for e in ["sent", "received", "delivered", "dropped"] {
            m.chat.get_or_create(&label("event", e)).inc_by(0);
        }
        Metrics { registry, ..m }
    }

    /// Count a chat event.
    pub fn chat_event(&self, e: &ChatEvent) {
        let event = match e {
            ChatEvent::MessageSent { .. } => "sent",
            ChatEvent::MessageReceived { own: false, .. } => "received",
            ChatEvent::Delivered { .. } => "delivered",
            ChatEvent::Dropped { .. } => "dropped",
            _ => return,
        };
        self.chat.get_or_create(&label("event", event)).inc();
    }

    /// Observe one store commit.
    pub fn store_commit(&self, took: Duration) {
        self.store_commit.observe(took.as_secs_f64());
    }

    /// Read the engine's counters and the connection table through the node task.
    async fn refresh(&self, commands: &mpsc::Sender<NodeCommand>, dropped: &DroppedEvents) {
        raise(&self.events_dropped, dropped.get());
        let (tx, rx) = oneshot::channel();
        let job = status_io_tokio::node::Inspector(Box::new(move |e| {
            let snapshot = (
                e.waku().stats(),
                e.waku().pool().len(),
                e.waku().pool().bytes(),
                e.mailserver_stats(),
            );
            // The scrape may have been abandoned: then nobody wants the snapshot.
            tx.send(snapshot).ok();
        }));
        if commands.send(NodeCommand::Inspect(job)).await.is_err() {
            return;
        }
        if let Ok((w, len, bytes, ms)) = rx.await {
            raise(&self.received, w.accepted + w.duplicates + w.rejected);
            raise(&self.relayed, w.relayed);
            for (reason, n) in [
                ("duplicate", w.duplicates),
                ("invalid", w.rejected),
                ("expired", w.expired),
            ] {
                raise(&self.dropped.get_or_create(&label("reason", reason)), n);
            }
            raise(&self.rate_limited, w.rate_limited);
            self.pool_envelopes.set(i64::try_from(len).unwrap_or(i64::MAX));
            self.pool_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            raise(&self.ms_requests, ms.requests);
            raise(&self.ms_served, ms.envelopes_served);
        }
        let (tx, rx) = oneshot::channel();
        if commands.send(NodeCommand::Peers(tx)).await.is_err() {
            return;
        }
        if let Ok(peers) = rx.await {
            self.set_peers(&peers);
        }
    }

    fn set_peers(&self, peers: &[PeerInfo]) {
        let mut counts = [("waku", 0i64), ("shh", 0), ("none", 0)];
        for p in peers.iter().filter(|p| p.id.is_some()) {
            let d = p.dialect.map(|d| d.capability()).unwrap_or("none");
            if let Some(c) = counts.iter_mut().find(|(n, _)| *n == d) {
                c.1 += 1;
            }
        }
        for (d, n) in counts {
            self.peers.get_or_create(&label("dialect", d)).set(n);
        }
    }

    /// The metrics in the text format.
    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Bind the metrics address (the error names it).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("--metrics: cannot listen on {addr}: {e}")))
}

/// Answer scrapes on `listener` until the node's command channel closes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    commands: mpsc::Sender<NodeCommand>,
    dropped: DroppedEvents,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if commands.is_closed() {
            return;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics: too many scrapes at once; connection closed");
            continue;
        };
        let (metrics, commands, dropped) = (metrics.clone(), commands.clone(), dropped.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = answer(sock, &metrics, &commands, &dropped).await {
                tracing::debug!(%peer, "metrics request: {e}");
            }
        });
    }
}

async fn answer(
    mut sock: TcpStream,
    metrics: &Metrics,
    commands: &mpsc::Sender<NodeCommand>,
    dropped: &DroppedEvents,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed before the request ended",
                ));
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() > MAX_REQUEST {
                return Err(std::io::Error::other("request head too long"));
            }
        }
        Ok(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))??;
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let (status, ctype, body) = if method != b"GET" {
        ("405 Method Not Allowed", "text/plain", "only GET\n".to_string())
    } else if path == b"/metrics" {
        metrics.refresh(commands, dropped).await;
        match metrics.render() {
            Ok(body) => (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            ),
            Err(_) => (
                "500 Internal Server Error",
                "text/plain",
                "encoding failed\n".into(),
            ),
        }
    } else {
        ("404 Not Found", "text/plain", "see /metrics\n".to_string())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(reply.as_bytes()).await?;
    sock.shutdown().await
}
