//! TXT lookups for DNS discovery (EIP-1459) and the peer cache file.
//!
//! The engine asks for TXT records with [`Output::ResolveTxt`](status_sansio::node::Output::ResolveTxt);
//! a driver answers through a [`TxtResolver`]. [`SystemResolver`] uses `hickory-resolver` with the system
//! configuration (`/etc/resolv.conf`), on a small tokio runtime of its own so that blocking callers can use
//! it. Tests plug in a resolver over a fixed zone instead.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hickory_resolver::TokioResolver;

/// Looks up TXT records, blocking. Each record's strings are joined into one text (EIP-1459).
pub trait TxtResolver: Send + Sync {
    /// The TXT records of `name`; `Err` if the lookup failed (NXDOMAIN included).
    fn resolve_txt(&self, name: &str) -> io::Result<Vec<String>>;
}

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

/// The name as a fully qualified one, so no search domain is appended.
pub fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// The texts of a TXT answer: each record's strings joined, bytes taken as UTF-8 (lossy).
pub fn txt_texts(lookup: &hickory_resolver::lookup::TxtLookup) -> Vec<String> {
    lookup
        .iter()
        .map(|txt| {
            let bytes: Vec<u8> = txt.txt_data().iter().flat_map(|s| s.iter().copied()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
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

/// The peer cache file in a data directory.
pub fn peer_cache_path(data_dir: &Path) -> PathBuf {
    data_dir.join("peers.cache")
}

/// Read a peer cache file for [`EngineConfig::peer_cache`](status_sansio::node::EngineConfig::peer_cache):
/// `None` if it is missing, unreadable or larger than
/// [`MAX_CACHE_BYTES`](status_sansio::node::peers::MAX_CACHE_BYTES).
pub fn load_peer_cache(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let max = status_sansio::node::peers::MAX_CACHE_BYTES;
    // Read at most one byte past the cap, so a file that grows meanwhile cannot make us read without bound.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() <= max).then_some(bytes)
}

/// Write a peer cache file atomically (a temporary file renamed over it).
pub fn save_peer_cache(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("cache.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    io::Write::write_all(&mut f, bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
