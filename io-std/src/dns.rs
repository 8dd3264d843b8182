//! TXT lookups for DNS discovery (EIP-1459) and the peer cache file.
//!
//! The engine asks for TXT records with [`Output::ResolveTxt`](status_sansio::node::Output::ResolveTxt);
//! a driver answers through a [`TxtResolver`]. [`BlockingResolver`] asks the system's name servers
//! (`/etc/resolv.conf`) over plain `std::net` sockets, UDP first and TCP when the answer is truncated, with
//! DNS messages built and parsed by `hickory-proto`: no async runtime. With the `hickory` feature,
//! [`SystemResolver`] uses the full `hickory-resolver` (caching, search rules) on a small tokio runtime of
//! its own. Tests plug in a resolver over a fixed zone instead.

use std::io;
use std::path::{Path, PathBuf};

/// Looks up TXT records, blocking. Each record's strings are joined into one text (EIP-1459, with
/// [`join_txt`](status_sansio::discovery::join_txt)). `status_io_tokio::dns::TxtResolver` is the
/// same concept for async code.
pub trait TxtResolver: Send + Sync {
    /// The TXT records of `name`; `Err` if the lookup failed (NXDOMAIN included).
    fn resolve_txt(&self, name: &str) -> io::Result<Vec<String>>;
}

/// The name as a fully qualified one, so no search domain is appended.
pub fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

pub use blocking::BlockingResolver;
#[cfg(feature = "hickory")]
pub use system::{txt_texts, SystemResolver};

mod blocking {
    use std::io::{self, Read, Write};
    use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
    use std::time::Duration;

    use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    use rand_core::{OsRng, RngCore};

    use status_sansio::discovery::join_txt;

    use super::{fqdn, TxtResolver};

    /// Largest answer read over TCP (the two-byte length prefix allows 64 KiB; EIP-1459 entries are small).
    const MAX_TCP_ANSWER: usize = u16::MAX as usize;
    /// Largest UDP datagram read (EDNS answers can exceed the classic 512 bytes).
    const MAX_UDP_ANSWER: usize = 4096;

    /// A blocking TXT resolver over `std::net`: asks each name server in turn (UDP, then TCP if the
    /// answer is truncated) until one answers. Messages are encoded and decoded with `hickory-proto`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use status_io_std::dns::BlockingResolver;
    ///
    /// let resolver = BlockingResolver::with_servers(vec!["127.0.0.1:53".parse().unwrap()])
    ///     .timeout(Duration::from_millis(200));
    /// assert_eq!(resolver.servers().len(), 1);
    /// ```
    #[derive(Debug)]
    pub struct BlockingResolver {
        servers: Vec<SocketAddr>,
        timeout: Duration,
    }

    impl BlockingResolver {
        /// The name servers of `/etc/resolv.conf` (none if it is missing or names none: every lookup
        /// then fails), 5 s per attempt.
        pub fn system() -> Self {
            let servers = std::fs::read("/etc/resolv.conf")
                .ok()
                .and_then(|bytes| resolv_conf::Config::parse(bytes).ok())
                .map(|config| {
                    config
                        .nameservers
                        .iter()
                        .map(|ip| SocketAddr::new(IpAddr::from(ip), 53))
                        .collect()
                })
                .unwrap_or_default();
            Self::with_servers(servers)
        }

        /// Ask these servers, in order.
        pub fn with_servers(servers: Vec<SocketAddr>) -> Self {
            Self {
                servers,
                timeout: Duration::from_secs(5),
            }
        }

        /// How long one attempt at one server may take (per socket operation).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// The servers asked.
        pub fn servers(&self) -> &[SocketAddr] {
            &self.servers
        }

        fn query(&self, name: &Name) -> io::Result<Vec<u8>> {
            let mut message = Message::new();
            message
                // A random id and a fresh socket (random port) per query make a spoofed answer unlikely to
                // match; answers are also matched on their question.
                .set_id(OsRng.next_u32() as u16)
                .set_recursion_desired(true)
                .add_query(Query::query(name.clone(), RecordType::TXT));
            message.to_vec().map_err(io::Error::other)
        }

        fn ask(&self, server: SocketAddr, name: &Name) -> io::Result<Vec<String>> {
            let query = self.query(name)?;
            let local: SocketAddr = if server.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(server)?;
            socket.send(&query)?;
            let mut buf = vec![0u8; MAX_UDP_ANSWER];
            // One deadline for the whole wait: stray datagrams cannot keep it open.
            let deadline = std::time::Instant::now() + self.timeout;
            let answer = loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no answer from the name server",
                    ));
                }
                socket.set_read_timeout(Some(left))?;
                let n = socket.recv(&mut buf)?;
                match parse_answer(&query, &buf[..n]) {
                    Ok(answer) => break answer,
                    // Not an answer to this query (a stray or spoofed datagram): keep waiting.
                    Err(Mismatch) => continue,
                }
            };
            let answer = if answer.truncated() {
                self.ask_tcp(server, &query)?
            } else {
                answer
            };
            texts(answer)
        }

        fn ask_tcp(&self, server: SocketAddr, query: &[u8]) -> io::Result<Message> {
            let mut stream = TcpStream::connect_timeout(&server, self.timeout)?;
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))?;
            let len = u16::try_from(query.len()).map_err(io::Error::other)?;
            let mut framed = len.to_be_bytes().to_vec();
            framed.extend_from_slice(query);
            stream.write_all(&framed)?;
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix)?;
            let n = usize::from(u16::from_be_bytes(prefix)).min(MAX_TCP_ANSWER);
            let mut buf = vec![0u8; n];
            stream.read_exact(&mut buf)?;
            parse_answer(query, &buf)
                .map_err(|Mismatch| io::Error::new(io::ErrorKind::InvalidData, "TCP answer to another query"))
        }
    }

    /// A datagram that is not the answer to our query.
    struct Mismatch;

    /// `bytes` parsed as the answer to `query`: same id, a response, the same question.
    fn parse_answer(query: &[u8], bytes: &[u8]) -> Result<Message, Mismatch> {
        let query = Message::from_vec(query).map_err(|_| Mismatch)?;
        let answer = Message::from_vec(bytes).map_err(|_| Mismatch)?;
        let same = answer.id() == query.id()
            && answer.message_type() == MessageType::Response
            && answer.query() == query.query();
        same.then_some(answer).ok_or(Mismatch)
    }

    fn texts(answer: Message) -> io::Result<Vec<String>> {
        match answer.response_code() {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such name (NXDOMAIN)"))
            }
            code => return Err(io::Error::other(format!("name server answered {code}"))),
        }
        Ok(join_txt(answer.answers().iter().filter_map(
            |record| match record.data() {
                RData::TXT(txt) => Some(txt.txt_data()),
                _ => None,
            },
        )))
    }

    impl TxtResolver for BlockingResolver {
        fn resolve_txt(&self, name: &str) -> io::Result<Vec<String>> {
            let name = Name::from_ascii(fqdn(name))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let mut last = io::Error::new(io::ErrorKind::NotConnected, "no name server configured");
            for &server in &self.servers {
                match self.ask(server, &name) {
                    Ok(texts) => return Ok(texts),
                    // A definite "no such name" is the answer; other failures try the next server.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

#[cfg(feature = "hickory")]
mod system {
    use std::io;
    use std::sync::OnceLock;

    use hickory_resolver::TokioResolver;

    use status_sansio::discovery::join_txt;

    use super::{fqdn, TxtResolver};

    /// The system resolver through `hickory-resolver`; built on first use (a system without a usable
    /// configuration fails every lookup).
    #[derive(Default)]
    pub struct SystemResolver {
        inner: OnceLock<Result<(tokio::runtime::Runtime, TokioResolver), String>>,
    }

    impl SystemResolver {
        /// A resolver with the system configuration.
        pub fn new() -> Self {
            Self::default()
        }
    }

    impl core::fmt::Debug for SystemResolver {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("SystemResolver").finish_non_exhaustive()
        }
    }

    /// The texts of a `hickory-resolver` TXT answer: each record's strings joined (lossy UTF-8).
    pub fn txt_texts(lookup: &hickory_resolver::lookup::TxtLookup) -> Vec<String> {
        join_txt(lookup.iter().map(|txt| txt.txt_data()))
    }

    impl TxtResolver for SystemResolver {
        fn resolve_txt(&self, name: &str) -> io::Result<Vec<String>> {
            let inner = self.inner.get_or_init(|| {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let resolver = TokioResolver::builder_tokio().map_err(|e| e.to_string())?.build();
                Ok((rt, resolver))
            });
            let (rt, resolver) = inner.as_ref().map_err(|e| io::Error::other(e.clone()))?;
            let lookup = rt
                .block_on(resolver.txt_lookup(fqdn(name)))
                .map_err(io::Error::other)?;
            Ok(txt_texts(&lookup))
        }
    }
}

/// The peer cache file in a data directory.
pub fn peer_cache_path(data_dir: &Path) -> PathBuf {
    data_dir.join("peers.cache")
}

/// Read a peer cache file for [`EngineConfig::peer_cache`](status_sansio::node::EngineConfig::peer_cache):
/// `Ok(None)` if it does not exist. The file is a [`state_file`](crate::state_file): a damaged, truncated,
/// empty or wrong-version one, or one larger than
/// [`MAX_CACHE_BYTES`](status_sansio::discovery::peerpool::MAX_CACHE_BYTES), is an error naming the
/// file (and the file is left as it is).
pub fn load_peer_cache(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let max = status_sansio::discovery::peerpool::MAX_CACHE_BYTES;
    Ok(crate::state_file::read(path, max)?.map(|bytes| bytes.to_vec()))
}

/// Write a peer cache file as a [`state_file`](crate::state_file), atomically.
pub fn save_peer_cache(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::state_file::write(path, bytes)
}
