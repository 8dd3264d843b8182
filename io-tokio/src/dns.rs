//! TXT lookups for DNS discovery (EIP-1459): the engine asks with
//! [`Output::ResolveTxt`](status_sansio::node::Output::ResolveTxt), the node answers through a
//! [`TxtResolver`]. The same names as `status_io_std::dns`, async: [`TxtResolver`] and [`SystemResolver`]
//! (the system configuration through `hickory-resolver`, here on the caller's runtime). The peer cache file
//! helpers are `status_io_std::dns`'s.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;

use hickory_resolver::TokioResolver;
use status_io_std::dns::{fqdn, txt_texts};

/// A TXT lookup in progress.
pub type TxtFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<String>>> + Send + 'a>>;

/// Looks up TXT records for DNS discovery. Each record's strings are joined into one text (EIP-1459, with
/// [`join_txt`](status_sansio::discovery::join_txt)).
pub trait TxtResolver: Send + Sync {
    /// The TXT records of `name`; `Err` if the lookup failed (NXDOMAIN included).
    fn resolve_txt(&self, name: String) -> TxtFuture<'_>;
}

/// The system resolver through `hickory-resolver` (`/etc/resolv.conf`), built on first use; a system
/// without a usable configuration fails every lookup.
#[derive(Default)]
pub struct SystemResolver {
    inner: OnceLock<Result<TokioResolver, String>>,
}

impl SystemResolver {
    /// A resolver with the system configuration.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TxtResolver for SystemResolver {
    fn resolve_txt(&self, name: String) -> TxtFuture<'_> {
        Box::pin(async move {
            let inner = self.inner.get_or_init(|| {
                TokioResolver::builder_tokio()
                    .map(|b| b.build())
                    .map_err(|e| e.to_string())
            });
            let resolver = inner.as_ref().map_err(|e| io::Error::other(e.clone()))?;
            let lookup = resolver.txt_lookup(fqdn(&name)).await.map_err(io::Error::other)?;
            Ok(txt_texts(&lookup))
        })
    }
}
