//! A socket as the node task holds it: its reader and writer tasks ([`start_socket`]), its graceful
//! close ([`Socket::linger`]), what the task knows of it for logs and [`NodeCommand::Peers`](super::NodeCommand::Peers)
//! ([`Link`]), and the logging of engine events in its span ([`log_event`]).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use status_sansio::node::{ConnId, Event};
use status_sansio::waku;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{short_id, PeerInfo};

/// Per-socket write queue depth (chunks); a peer that falls this far behind is disconnected.
const WRITE_QUEUE: usize = 1024;

/// Longest a single socket write may take before the socket is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the network side tells the node task.
pub(super) enum Net {
    Read(ConnId, Vec<u8>),
    Eof(ConnId),
    Dialed(ConnId, io::Result<TcpStream>),
    Resolved(String, Option<Vec<String>>),
}

/// A socket's tasks as the node task holds them: the writer's queue, and the reader to stop when the
/// engine closes the socket (dropping both halves closes it; the writer drops its half once it has
/// written what was queued).
pub(super) struct Socket {
    pub(super) writer: mpsc::Sender<bytes::Bytes>,
    reader: Option<tokio::task::AbortHandle>,
}

/// What the node task knows of a socket, for logs and [`NodeCommand::Peers`].
pub(super) struct Link {
    pub(super) info: PeerInfo,
    pub(super) span: tracing::Span,
}

pub(super) fn link(conn: ConnId, addr: SocketAddr, inbound: bool) -> Link {
    // Dials carry the engine's high id bit; the log shows the number without it.
    let span = tracing::info_span!(
        "peer",
        conn = conn.0 & (u64::MAX >> 1),
        %addr,
        dir = if inbound { "in" } else { "out" },
        id = tracing::field::Empty
    );
    Link {
        info: PeerInfo {
            conn,
            addr,
            inbound,
            id: None,
            client: None,
            dialect: None,
        },
        span,
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Without this a peer that keeps its end open would keep the read half, the task and the
        // descriptor alive for ever.
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}

/// How long a socket keeps reading after we said goodbye, so the peer can read our Disconnect (a
/// socket closed with unread input is reset, and a reset can discard what we wrote last).
const GOODBYE_LINGER: Duration = Duration::from_secs(2);

impl Socket {
    /// Close gracefully: the writer finishes what is queued, and the reader is stopped only after
    /// [`GOODBYE_LINGER`] (or when the peer closes first).
    pub(super) fn linger(mut self) {
        if let Some(r) = self.reader.take() {
            tokio::spawn(async move {
                tokio::time::sleep(GOODBYE_LINGER).await;
                r.abort();
            });
        }
    }
}

pub(super) fn start_socket(
    stream: TcpStream,
    conn: ConnId,
    net: &mpsc::Sender<Net>,
    writers: &mut BTreeMap<ConnId, Socket>,
    span: tracing::Span,
) {
    use tracing::Instrument;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(parent: &span, "TCP_NODELAY: {e}");
    }
    let (mut r, mut w) = stream.into_split();
    let net = net.clone();
    let reader = tokio::spawn(
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) => {
                        tracing::debug!("the peer closed the connection");
                        net.send(Net::Eof(conn)).await.ok(); // Err: the node task is gone, nobody to tell.
                        break;
                    }
                    Err(e) => {
                        tracing::debug!("read error: {e}");
                        net.send(Net::Eof(conn)).await.ok(); // Err: the node task is gone, nobody to tell.
                        break;
                    }
                    Ok(n) => {
                        if net.send(Net::Read(conn, buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        .instrument(span.clone()),
    );
    let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(WRITE_QUEUE);
    tokio::spawn(
        async move {
            // A peer that stops reading cannot pin this task: a write that makes no progress for
            // WRITE_TIMEOUT ends it (and with it the socket's write half).
            while let Some(b) = rx.recv().await {
                match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&b)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!("write error: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::info!("write timed out: the peer does not read");
                        return;
                    }
                }
            }
            match tokio::time::timeout(WRITE_TIMEOUT, w.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("socket shutdown: {e}"),
                Err(_) => tracing::debug!("socket shutdown timed out"),
            }
        }
        .instrument(span),
    );
    writers.insert(
        conn,
        Socket {
            writer: tx,
            reader: Some(reader.abort_handle()),
        },
    );
}

/// Log an engine event in its peer's span, keeping the connection table current.
pub(super) fn log_event(links: &mut BTreeMap<ConnId, Link>, e: &Event) {
    match e {
        Event::PeerConnected {
            conn,
            id,
            client,
            dialect,
        } => {
            let dialect_name = dialect.map(|d| d.capability()).unwrap_or("none");
            if let Some(l) = links.get_mut(conn) {
                l.span.record("id", short_id(id));
                l.info.id = Some(*id);
                l.info.client = Some(client.clone());
                l.info.dialect = *dialect;
                let _g = l.span.enter();
                tracing::info!(%client, dialect = dialect_name, "peer connected");
            } else {
                tracing::info!(conn = conn.0, id = %short_id(id), %client, dialect = dialect_name, "peer connected");
            }
        }
        Event::PeerDisconnected {
            conn,
            id,
            reason,
            remote,
        } => {
            let by = if *remote { "peer" } else { "us" };
            let id = id.as_ref().map(short_id).unwrap_or_else(|| "-".into());
            match links.remove(conn) {
                Some(l) => {
                    let _g = l.span.enter();
                    tracing::info!(%reason, by, "peer disconnected");
                }
                None => tracing::info!(conn = conn.0, %id, %reason, by, "peer disconnected"),
            }
        }
        Event::Waku(w) => {
            let peer_span = |peer: &ConnId| {
                links
                    .get(peer)
                    .map(|l| l.span.clone())
                    .unwrap_or_else(tracing::Span::none)
            };
            match w {
                waku::Event::PeerReady { peer, options } => {
                    let _g = peer_span(peer).entered();
                    tracing::info!(
                        pow = ?options.pow_requirement,
                        light = ?options.light_node,
                        "waku handshake done"
                    );
                }
                waku::Event::PeerFault {
                    peer,
                    fault,
                    disconnected,
                } => {
                    let _g = peer_span(peer).entered();
                    tracing::info!(%fault, disconnected, "peer fault: message dropped");
                }
                waku::Event::RateLimited { peer } => {
                    let _g = peer_span(peer).entered();
                    tracing::debug!("packet dropped: rate limit");
                }
                waku::Event::PostFailed { error } => tracing::warn!(%error, "post failed"),
                other => tracing::trace!(event = ?other, "waku"),
            }
        }
        _ => {}
    }
}
