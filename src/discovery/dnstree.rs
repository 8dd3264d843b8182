//! EIP-1459 node lists in DNS: the TXT entries, the `enrtree://` URL, and [`DnsTreeClient`], a sans-IO
//! machine that syncs trees by asking its driver for TXT records.
//!
//! Entries (EIP-1459 "DNS Record Structure"):
//! * `enrtree-root:v1 e=<enr-root> l=<link-root> seq=<n> sig=<base64url 65 bytes>`: signed over the
//!   Keccak-256 of the text before ` sig=`; verified (as go-ethereum does) against the tree's compressed
//!   key with the recovery id ignored and high-S rejected;
//! * `enrtree-branch:<h>,<h>,…`: child hashes; a hash is unpadded base32 of 12 to 32 bytes (go-ethereum
//!   `isValidHash`); trees publish the first 16 bytes of Keccak-256 of the child's text;
//! * `enr:<base64url>`: a node record ([`Enr`]), only in the `e=` subtree;
//! * `enrtree://<base32 compressed key>@<domain>`: a link to another tree, only in the `l=` subtree.
//!
//! An entry at `<hash>.<domain>` is accepted only if Keccak-256 of its exact text starts with the bytes
//! of `<hash>` ("Client Protocol" step 3).
//!
//! Client ("Client Protocol"): for every configured tree the client resolves the root at `<domain>`,
//! verifies it, then walks both subtrees in random order (from its seeded RNG), tracking visited hashes
//! so a loop costs nothing, and reports every verified record as [`Event::Node`]. Linked trees are added
//! to the sync horizon. It re-checks each root every [`DnsConfig::resync_interval`]; an unchanged root
//! whose last walk completed is not walked again. [`DnsTreeClient::resync`] forces an immediate re-check
//! and a full walk (the node engine calls it when its peer pool resumes discovery).
//!
//! Deviations from go-ethereum's `p2p/dnsdisc`: the walk is eager (the whole tree, within
//! [`DnsConfig::max_entries_per_tree`]) rather than lazy per requested node; an entry that fails is
//! skipped (reported as [`Event::Error`]) and the walk goes on, where go-ethereum aborts `SyncTree`;
//! linked trees are kept, not garbage-collected, once added (up to [`DnsConfig::max_trees`]); base64
//! (records, signatures) with non-zero trailing bits is rejected; a root whose `seq` is lower than one already seen for
//! that tree is rejected ([`TreeError::StaleRoot`]), as the EIP asks (go-ethereum does not check it).

use core::fmt;
use core::str::FromStr;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{Signature, VerifyingKey};
use rand_core::RngCore;

use crate::crypto::{
    keccak256, pubkey_from_sec1, pubkey_to_compressed, sign_recoverable, PublicKey, SecretKey,
};
use crate::rng::{Rng, Seed};
use crate::time::Timestamp;

use super::encoding::{base32_decode, BASE32, BASE64URL};
use super::enr::{Enr, EnrError};
use super::DiscoveryError;

/// Prefix of a root entry.
pub const ROOT_PREFIX: &str = "enrtree-root:v1";
/// Prefix of a link entry and of tree URLs.
pub const LINK_PREFIX: &str = "enrtree://";
/// Prefix of a branch entry.
pub const BRANCH_PREFIX: &str = "enrtree-branch:";
/// The longest TXT text accepted for one entry (a UDP DNS answer is at most 512 bytes).
pub const MAX_ENTRY_LEN: usize = 1024;
/// The longest domain name accepted (RFC 1035).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Why a TXT entry was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The text starts with none of the entry prefixes.
    #[error("unknown entry type")]
    Unknown,
    /// The text is longer than [`MAX_ENTRY_LEN`].
    #[error("entry too long")]
    TooLong,
    /// A root entry that is not `enrtree-root:v1 e=… l=… seq=… sig=…`.
    #[error("malformed root entry")]
    RootSyntax,
    /// A hash that is not unpadded base32 of 12 to 32 bytes.
    #[error("invalid child hash")]
    InvalidHash,
    /// A signature that is not 65 bytes of unpadded base64url.
    #[error("invalid root signature encoding")]
    SignatureEncoding,
    /// A link without `<key>@`.
    #[error("link without a public key")]
    NoPublicKey,
    /// A link whose key is not base32 of a compressed secp256k1 point.
    #[error("invalid link public key")]
    BadPublicKey,
    /// A link whose domain is empty, too long or has characters DNS names do not.
    #[error("invalid link domain")]
    BadDomain,
    /// An `enr:` entry whose record was rejected.
    #[error("invalid node record: {0}")]
    Enr(EnrError),
}

/// The abbreviated hash naming an entry: unpadded base32 of the first 16 bytes of Keccak-256 of `text`.
pub fn entry_hash(text: &str) -> String {
    BASE32.encode(&keccak256(text.as_bytes())[..16])
}

/// Decode a child hash: unpadded base32 of 12 to 32 bytes, as go-ethereum's `isValidHash` accepts.
pub fn decode_hash(hash: &str) -> Result<Vec<u8>, EntryError> {
    // 32 bytes are 52 characters; refuse longer strings before decoding.
    if hash.len() > 52 {
        return Err(EntryError::InvalidHash);
    }
    let bytes = base32_decode(hash).ok_or(EntryError::InvalidHash)?;
    if !(12..=32).contains(&bytes.len()) {
        return Err(EntryError::InvalidHash);
    }
    Ok(bytes)
}

/// Whether `text` hashes to `hash` (Keccak-256 of the text starts with the decoded hash bytes).
pub fn hash_matches(hash: &str, text: &str) -> bool {
    match decode_hash(hash) {
        Ok(want) => keccak256(text.as_bytes()).starts_with(&want),
        Err(_) => false,
    }
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= MAX_DOMAIN_LEN
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !d.starts_with('.')
        && !d.contains("..")
}

/// An `enrtree://<key>@<domain>` URL: where a tree is and which key signs it.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrTreeUrl {
    /// The key that signs the tree's root.
    pub public_key: PublicKey,
    /// The DNS name of the root.
    pub domain: String,
}

impl EnrTreeUrl {
    /// A URL for `domain` signed by `public_key`; fails if the domain is not a plausible DNS name.
    pub fn new(public_key: PublicKey, domain: &str) -> Result<Self, EntryError> {
        if !valid_domain(domain) {
            return Err(EntryError::BadDomain);
        }
        Ok(EnrTreeUrl {
            public_key,
            domain: domain.to_string(),
        })
    }
}

impl FromStr for EnrTreeUrl {
    type Err = EntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        let rest = s.strip_prefix(LINK_PREFIX).ok_or(EntryError::Unknown)?;
        let (key, domain) = rest.split_once('@').ok_or(EntryError::NoPublicKey)?;
        // A compressed key is 33 bytes, 53 base32 characters.
        if key.len() != 53 {
            return Err(EntryError::BadPublicKey);
        }
        let key = base32_decode(key).ok_or(EntryError::BadPublicKey)?;
        if key.len() != 33 {
            return Err(EntryError::BadPublicKey);
        }
        let public_key = pubkey_from_sec1(&key).ok_or(EntryError::BadPublicKey)?;
        EnrTreeUrl::new(public_key, domain)
    }
}

impl fmt::Display for EnrTreeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{LINK_PREFIX}{}@{}",
            BASE32.encode(&pubkey_to_compressed(&self.public_key)),
            self.domain
        )
    }
}

impl fmt::Debug for EnrTreeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnrTreeUrl({self})")
    }
}

/// A root entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RootEntry {
    /// Hash of the root of the node-record subtree.
    pub enr_root: String,
    /// Hash of the root of the link subtree.
    pub link_root: String,
    /// The tree's sequence number.
    pub seq: u64,
    /// The 65-byte signature `r‖s‖v`.
    pub signature: [u8; 65],
}

impl RootEntry {
    /// The signed text: the entry without ` sig=…`.
    pub fn signed_text(&self) -> String {
        format!(
            "{ROOT_PREFIX} e={} l={} seq={}",
            self.enr_root, self.link_root, self.seq
        )
    }

    /// Whether the signature was made by `key` over Keccak-256 of [`RootEntry::signed_text`]. The
    /// recovery id is ignored and high-S signatures fail (go-ethereum `crypto.VerifySignature`).
    pub fn verify(&self, key: &PublicKey) -> bool {
        let digest = keccak256(self.signed_text().as_bytes());
        let Ok(sig) = Signature::from_slice(&self.signature[..64]) else {
            return false;
        };
        VerifyingKey::from(key).verify_prehash(&digest, &sig).is_ok()
    }

    /// A root signed with `sk` (tree publishers and tests).
    pub fn sign(enr_root: &str, link_root: &str, seq: u64, sk: &SecretKey) -> Result<RootEntry, EntryError> {
        decode_hash(enr_root)?;
        decode_hash(link_root)?;
        let mut root = RootEntry {
            enr_root: enr_root.to_string(),
            link_root: link_root.to_string(),
            seq,
            signature: [0; 65],
        };
        let digest = keccak256(root.signed_text().as_bytes());
        root.signature = sign_recoverable(sk, &digest).map_err(|_| EntryError::SignatureEncoding)?;
        Ok(root)
    }

    /// Parse a root entry (the signature is not checked here: see [`RootEntry::verify`]).
    pub fn parse(text: &str) -> Result<RootEntry, EntryError> {
        if text.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        let mut it = text.split_ascii_whitespace();
        if it.next() != Some(ROOT_PREFIX) {
            return Err(EntryError::RootSyntax);
        }
        let mut field = |name: &str| -> Result<&str, EntryError> {
            it.next()
                .and_then(|t| t.strip_prefix(name))
                .ok_or(EntryError::RootSyntax)
        };
        let e = field("e=")?;
        let l = field("l=")?;
        let seq = field("seq=")?;
        let sig = field("sig=")?;
        if it.next().is_some() {
            return Err(EntryError::RootSyntax);
        }
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EntryError::RootSyntax);
        }
        let seq: u64 = seq.parse().map_err(|_| EntryError::RootSyntax)?;
        decode_hash(e)?;
        decode_hash(l)?;
        let sig = BASE64URL
            .decode(sig.as_bytes())
            .map_err(|_| EntryError::SignatureEncoding)?;
        let signature: [u8; 65] = sig.try_into().map_err(|_| EntryError::SignatureEncoding)?;
        Ok(RootEntry {
            enr_root: e.to_string(),
            link_root: l.to_string(),
            seq,
            signature,
        })
    }
}

impl fmt::Display for RootEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sig={}",
            self.signed_text(),
            BASE64URL.encode(&self.signature)
        )
    }
}

/// A non-root entry of a tree.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Entry {
    /// `enrtree-branch:`: hashes of child entries.
    Branch(Vec<String>),
    /// `enr:`: a verified node record.
    Enr(Box<Enr>),
    /// `enrtree://`: a link to another tree.
    Link(EnrTreeUrl),
}

impl Entry {
    /// True if `text` starts like a subtree entry (branch, link or ENR); [`Entry::parse`] then either
    /// parses it or says why it is malformed, never [`EntryError::Unknown`].
    pub fn is_entry_text(text: &str) -> bool {
        text.starts_with(BRANCH_PREFIX)
            || text.starts_with(LINK_PREFIX)
            || text.starts_with(super::enr::ENR_PREFIX)
    }

    /// Parse a subtree entry. A root entry is not a subtree entry and gives [`EntryError::Unknown`].
    pub fn parse(text: &str) -> Result<Entry, EntryError> {
        if text.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        if let Some(rest) = text.strip_prefix(BRANCH_PREFIX) {
            if rest.is_empty() {
                return Ok(Entry::Branch(Vec::new()));
            }
            let mut children = Vec::new();
            for h in rest.split(',') {
                decode_hash(h)?;
                children.push(h.to_string());
            }
            Ok(Entry::Branch(children))
        } else if text.starts_with(LINK_PREFIX) {
            Ok(Entry::Link(text.parse()?))
        } else if text.starts_with(super::enr::ENR_PREFIX) {
            Ok(Entry::Enr(Box::new(
                Enr::from_text(text).map_err(EntryError::Enr)?,
            )))
        } else {
            Err(EntryError::Unknown)
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Branch(c) => write!(f, "{BRANCH_PREFIX}{}", c.join(",")),
            Entry::Enr(e) => write!(f, "{e}"),
            Entry::Link(l) => write!(f, "{l}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------------

/// Limits and timers of a [`DnsTreeClient`].
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// TXT queries outstanding at once (default 4). Further queries wait their turn.
    pub max_in_flight: usize,
    /// Entries (branches, records, links) one walk of one tree may resolve (default 2000). Past it the
    /// walk stops with [`TreeError::TreeTooLarge`]; records already reported stay reported.
    pub max_entries_per_tree: usize,
    /// Trees in the sync horizon, configured plus linked (default 16). Links past it are reported with
    /// [`TreeError::TooManyTrees`] and ignored.
    pub max_trees: usize,
    /// How long a query may stay unanswered before it counts as failed (default 10 s).
    pub query_timeout: Duration,
    /// How often each root is re-checked (default 30 min, go-ethereum's `RecheckInterval`).
    pub resync_interval: Duration,
    /// The first retry delay after a root could not be resolved or verified (default 5 s); it doubles
    /// on each further failure up to `resync_interval`.
    pub root_retry: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            max_in_flight: 4,
            max_entries_per_tree: 2000,
            max_trees: 16,
            query_timeout: Duration::from_secs(10),
            resync_interval: Duration::from_secs(30 * 60),
            root_retry: Duration::from_secs(5),
        }
    }
}

/// What a [`DnsTreeClient`] asks its driver for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Look up the TXT records of `name` and answer with [`Input::TxtRecords`] (or
    /// [`Input::TxtRecord`] per record) or [`Input::ResolveFailed`].
    Resolve {
        /// The DNS name: `<domain>` for a root, `<hash>.<domain>` for an entry.
        name: String,
    },
    /// Something the application should know.
    Event(Event),
}

/// Application events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A verified node record found in a tree.
    Node(Box<Enr>),
    /// A tree was added to the sync horizon through a link.
    Linked(EnrTreeUrl),
    /// The walk of a tree finished.
    TreeSynced {
        /// The tree's domain.
        domain: String,
        /// The root's sequence number.
        seq: u64,
        /// Records reported by this walk.
        nodes: usize,
        /// Whether every entry was resolved (no failure, no cap reached).
        complete: bool,
    },
    /// A query or an answer was rejected; the walk goes on without it.
    Error {
        /// The DNS name concerned.
        name: String,
        /// Why.
        error: TreeError,
    },
}

/// Why an answer (or its absence) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The text did not parse.
    #[error("bad entry: {0}")]
    Entry(EntryError),
    /// No TXT record of the expected kind came back.
    #[error("no entry found")]
    NoEntry,
    /// The entry's text does not hash to its name.
    #[error("hash mismatch")]
    HashMismatch,
    /// The root's signature does not verify against the tree's key.
    #[error("bad root signature")]
    BadSignature,
    /// The root's sequence number is lower than one already seen.
    #[error("stale root: seq {got} < {have}")]
    StaleRoot {
        /// The highest sequence number seen.
        have: u64,
        /// The one received.
        got: u64,
    },
    /// The driver reported the lookup failed.
    #[error("lookup failed")]
    ResolveFailed,
    /// No answer within [`DnsConfig::query_timeout`].
    #[error("lookup timed out")]
    Timeout,
    /// A node record in the link subtree.
    #[error("node record in link subtree")]
    EnrInLinkTree,
    /// A link in the node-record subtree.
    #[error("link in node-record subtree")]
    LinkInEnrTree,
    /// The walk reached [`DnsConfig::max_entries_per_tree`].
    #[error("tree too large")]
    TreeTooLarge,
    /// A link was ignored because [`DnsConfig::max_trees`] trees are known.
    #[error("too many trees")]
    TooManyTrees,
}

/// What the driver tells a [`DnsTreeClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The full TXT answer for `name`: records of unknown types are skipped, the first known one is
    /// used, and an answer with none counts as [`TreeError::NoEntry`].
    TxtRecords {
        /// The name from [`Output::Resolve`].
        name: String,
        /// Each TXT record's strings joined.
        texts: Vec<String>,
    },
    /// One TXT record for `name`. A record of an unknown type is skipped and the query stays open (until
    /// another record, [`Input::ResolveFailed`] or the timeout); a known one answers it.
    TxtRecord {
        /// The name from [`Output::Resolve`].
        name: String,
        /// The record's strings joined.
        text: String,
    },
    /// The lookup of `name` failed (NXDOMAIN, SERVFAIL, timeout, or no more records). Ignored when the
    /// name was already answered.
    ResolveFailed {
        /// The name from [`Output::Resolve`].
        name: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subtree {
    Enr,
    Link,
}

#[derive(Debug)]
enum QueryKind {
    Root,
    Entry { hash: String, subtree: Subtree },
}

#[derive(Debug)]
struct Query {
    tree: usize,
    kind: QueryKind,
    deadline: Timestamp,
}

#[derive(Debug)]
struct Walk {
    root: RootEntry,
    /// Hashes waiting to be queried.
    missing: Vec<(String, Subtree)>,
    /// Every hash queued or resolved in this walk: loops and duplicates cost nothing.
    seen: BTreeSet<String>,
    in_flight: usize,
    nodes: usize,
    complete: bool,
}

#[derive(Debug)]
enum TreeState {
    /// Waiting for `at` to (re)query the root.
    Idle { at: Timestamp },
    /// The root query is out.
    RootPending,
    /// Walking the subtrees of a verified root.
    Walking(Walk),
}

#[derive(Debug)]
struct Tree {
    url: EnrTreeUrl,
    state: TreeState,
    /// Highest root seq seen.
    seq: Option<u64>,
    /// The root of the last walk that completed.
    synced: Option<RootEntry>,
    root_failures: u32,
}

/// The EIP-1459 client as a sans-IO machine (see the module documentation).
#[derive(Debug)]
pub struct DnsTreeClient {
    config: DnsConfig,
    rng: Rng,
    trees: Vec<Tree>,
    queries: BTreeMap<String, Query>,
    outputs: VecDeque<Output>,
}

impl DnsTreeClient {
    /// A client for the trees at `urls`. Nothing is queried until the first `handle_timeout`, so the
    /// driver controls when the first sync starts. Fails on a config with a zero cap or too many URLs.
    pub fn new(config: DnsConfig, urls: &[EnrTreeUrl], seed: &Seed) -> Result<Self, DiscoveryError> {
        if config.max_in_flight == 0 || config.max_entries_per_tree == 0 || config.max_trees == 0 {
            return Err(DiscoveryError::Config("DnsConfig caps must be at least 1"));
        }
        if urls.len() > config.max_trees {
            return Err(DiscoveryError::Config("more trees than DnsConfig::max_trees"));
        }
        let mut client = DnsTreeClient {
            config,
            rng: seed.rng(),
            trees: Vec::new(),
            queries: BTreeMap::new(),
            outputs: VecDeque::new(),
        };
        for url in urls {
            client.add_tree(url.clone(), Timestamp::ZERO);
        }
        Ok(client)
    }

    /// The configuration.
    pub fn config(&self) -> &DnsConfig {
        &self.config
    }

    /// Trees in the sync horizon.
    pub fn tree_count(&self) -> usize {
        self.trees.len()
    }

    /// Queries outstanding.
    pub fn in_flight(&self) -> usize {
        self.queries.len()
    }

    fn add_tree(&mut self, url: EnrTreeUrl, at: Timestamp) -> bool {
        if self
            .trees
            .iter()
            .any(|t| t.url.domain.eq_ignore_ascii_case(&url.domain))
        {
            return false;
        }
        self.trees.push(Tree {
            url,
            state: TreeState::Idle { at },
            seq: None,
            synced: None,
            root_failures: 0,
        });
        true
    }

    /// Feed an answer from the driver. Bad answers become [`Event::Error`]; an answer for a name with no
    /// query outstanding is ignored.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) {
        match input {
            Input::TxtRecords { name, texts } => {
                if !self.queries.contains_key(&name) {
                    return;
                }
                for text in &texts {
                    if self.answer(now, &name, text) {
                        break;
                    }
                }
                if self.queries.contains_key(&name) {
                    self.fail(now, &name, TreeError::NoEntry);
                }
            }
            Input::TxtRecord { name, text } => {
                if self.queries.contains_key(&name) {
                    self.answer(now, &name, &text);
                }
            }
            Input::ResolveFailed { name } => {
                if self.queries.contains_key(&name) {
                    self.fail(now, &name, TreeError::ResolveFailed);
                }
            }
        }
        self.pump(now);
    }

    /// Start due root checks and fail overdue queries. A spurious call is a no-op.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let overdue: Vec<String> = self
            .queries
            .iter()
            .filter(|(_, q)| q.deadline <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in overdue {
            self.fail(now, &name, TreeError::Timeout);
        }
        self.pump(now);
    }

    /// The earliest deadline: a query timeout or a root re-check.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let q = self.queries.values().map(|q| q.deadline).min();
        let t = self
            .trees
            .iter()
            .filter_map(|t| match t.state {
                TreeState::Idle { at } => Some(at),
                _ => None,
            })
            .min();
        crate::time::earliest(q, t)
    }

    /// Re-check every root now and walk each tree again even if its root is unchanged (for a peer pool
    /// that resumes discovery: records seen before get a second chance). Walks under way go on.
    pub fn resync(&mut self, now: Timestamp) {
        for t in &mut self.trees {
            t.synced = None;
            if let TreeState::Idle { at } = &mut t.state {
                *at = (*at).min(now);
            }
        }
        self.pump(now);
    }

    /// The next query or event.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn event(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn error(&mut self, name: &str, error: TreeError) {
        self.event(Event::Error {
            name: name.to_string(),
            error,
        });
    }

    /// Handle one TXT text for an outstanding query; `true` if it answered the query.
    fn answer(&mut self, now: Timestamp, name: &str, text: &str) -> bool {
        let Some(q) = self.queries.get(name) else {
            return false;
        };
        let tree = q.tree;
        match &q.kind {
            QueryKind::Root => {
                if !text.starts_with(ROOT_PREFIX) {
                    return false;
                }
                self.queries.remove(name);
                self.root_answer(now, tree, name, text);
                true
            }
            QueryKind::Entry { hash, subtree } => {
                let (hash, subtree) = (hash.clone(), *subtree);
                // Other TXT records at the name are skipped. The entry is parsed (an ENR decoded and its
                // signature checked) only after its text matched the hash that names it: unauthenticated
                // text never reaches the decoders.
                if !Entry::is_entry_text(text) {
                    return false;
                }
                self.queries.remove(name);
                if let TreeState::Walking(w) = &mut self.trees[tree].state {
                    w.in_flight = w.in_flight.saturating_sub(1);
                }
                if !hash_matches(&hash, text) {
                    self.entry_failed(tree, name, TreeError::HashMismatch);
                    return true;
                }
                match Entry::parse(text) {
                    Err(e) => self.entry_failed(tree, name, TreeError::Entry(e)),
                    Ok(entry) => self.entry_answer(now, tree, name, subtree, entry),
                }
                true
            }
        }
    }

    fn root_answer(&mut self, now: Timestamp, tree: usize, name: &str, text: &str) {
        let root = match RootEntry::parse(text) {
            Ok(r) => r,
            Err(e) => return self.root_failed(now, tree, name, TreeError::Entry(e)),
        };
        let t = &self.trees[tree];
        if !root.verify(&t.url.public_key) {
            return self.root_failed(now, tree, name, TreeError::BadSignature);
        }
        if let Some(have) = t.seq {
            if root.seq < have {
                return self.root_failed(now, tree, name, TreeError::StaleRoot { have, got: root.seq });
            }
        }
        let resync = now + self.config.resync_interval;
        let t = &mut self.trees[tree];
        t.seq = Some(root.seq);
        t.root_failures = 0;
        let unchanged = t
            .synced
            .as_ref()
            .is_some_and(|s| s.enr_root == root.enr_root && s.link_root == root.link_root);
        if unchanged {
            t.state = TreeState::Idle { at: resync };
            return;
        }
        let mut seen = BTreeSet::new();
        seen.insert(root.link_root.clone());
        seen.insert(root.enr_root.clone());
        let mut missing = vec![(root.link_root.clone(), Subtree::Link)];
        if root.enr_root != root.link_root {
            missing.push((root.enr_root.clone(), Subtree::Enr));
        }
        t.state = TreeState::Walking(Walk {
            root,
            missing,
            seen,
            in_flight: 0,
            nodes: 0,
            complete: true,
        });
    }

    fn root_failed(&mut self, now: Timestamp, tree: usize, name: &str, error: TreeError) {
        self.error(name, error);
        let t = &mut self.trees[tree];
        t.root_failures = t.root_failures.saturating_add(1);
        let shift = t.root_failures.saturating_sub(1).min(16);
        let delay = self
            .config
            .root_retry
            .saturating_mul(1 << shift)
            .min(self.config.resync_interval);
        t.state = TreeState::Idle { at: now + delay };
    }

    fn entry_failed(&mut self, tree: usize, name: &str, error: TreeError) {
        self.error(name, error);
        if let TreeState::Walking(w) = &mut self.trees[tree].state {
            w.complete = false;
        }
    }

    fn entry_answer(&mut self, now: Timestamp, tree: usize, name: &str, subtree: Subtree, entry: Entry) {
        match (entry, subtree) {
            (Entry::Branch(children), _) => {
                let cap = self.config.max_entries_per_tree;
                let mut too_large = false;
                if let TreeState::Walking(w) = &mut self.trees[tree].state {
                    for c in children {
                        if w.seen.contains(&c) {
                            continue;
                        }
                        if w.seen.len() >= cap {
                            too_large = true;
                            break;
                        }
                        w.seen.insert(c.clone());
                        w.missing.push((c, subtree));
                    }
                    if too_large {
                        w.missing.clear();
                        w.complete = false;
                    }
                }
                if too_large {
                    self.error(name, TreeError::TreeTooLarge);
                }
            }
            (Entry::Enr(enr), Subtree::Enr) => {
                if let TreeState::Walking(w) = &mut self.trees[tree].state {
                    w.nodes += 1;
                }
                self.event(Event::Node(enr));
            }
            (Entry::Link(url), Subtree::Link) => {
                if self.trees.len() >= self.config.max_trees {
                    if !self
                        .trees
                        .iter()
                        .any(|t| t.url.domain.eq_ignore_ascii_case(&url.domain))
                    {
                        self.error(name, TreeError::TooManyTrees);
                    }
                } else if self.add_tree(url.clone(), now) {
                    self.event(Event::Linked(url));
                }
            }
            (Entry::Enr(_), Subtree::Link) => self.entry_failed(tree, name, TreeError::EnrInLinkTree),
            (Entry::Link(_), Subtree::Enr) => self.entry_failed(tree, name, TreeError::LinkInEnrTree),
        }
    }

    fn fail(&mut self, now: Timestamp, name: &str, error: TreeError) {
        let Some(q) = self.queries.remove(name) else {
            return;
        };
        match q.kind {
            QueryKind::Root => self.root_failed(now, q.tree, name, error),
            QueryKind::Entry { .. } => {
                if let TreeState::Walking(w) = &mut self.trees[q.tree].state {
                    w.in_flight = w.in_flight.saturating_sub(1);
                }
                self.entry_failed(q.tree, name, error);
            }
        }
    }

    /// Issue every query that is due and fits, and finish walks with nothing left.
    fn pump(&mut self, now: Timestamp) {
        let deadline = now + self.config.query_timeout;
        for i in 0..self.trees.len() {
            // Root checks that are due.
            if let TreeState::Idle { at } = self.trees[i].state {
                if at <= now && self.queries.len() < self.config.max_in_flight {
                    let name = self.trees[i].url.domain.clone();
                    if !self.queries.contains_key(&name) {
                        self.trees[i].state = TreeState::RootPending;
                        self.queries.insert(
                            name.clone(),
                            Query {
                                tree: i,
                                kind: QueryKind::Root,
                                deadline,
                            },
                        );
                        self.outputs.push_back(Output::Resolve { name });
                    }
                }
            }
            // Entries of walks, in random order.
            while self.queries.len() < self.config.max_in_flight {
                let domain = self.trees[i].url.domain.clone();
                let TreeState::Walking(w) = &mut self.trees[i].state else {
                    break;
                };
                if w.missing.is_empty() {
                    break;
                }
                let k = (self.rng.next_u64() % w.missing.len() as u64) as usize;
                let (hash, subtree) = w.missing.swap_remove(k);
                let name = format!("{hash}.{domain}");
                if self.queries.contains_key(&name) {
                    continue;
                }
                w.in_flight += 1;
                self.queries.insert(
                    name.clone(),
                    Query {
                        tree: i,
                        kind: QueryKind::Entry { hash, subtree },
                        deadline,
                    },
                );
                self.outputs.push_back(Output::Resolve { name });
            }
            // A walk with nothing missing and nothing in flight is done.
            let done = matches!(&self.trees[i].state, TreeState::Walking(w) if w.missing.is_empty() && w.in_flight == 0);
            if done {
                let resync = now + self.config.resync_interval;
                let t = &mut self.trees[i];
                let state = core::mem::replace(&mut t.state, TreeState::Idle { at: resync });
                if let TreeState::Walking(w) = state {
                    if w.complete {
                        t.synced = Some(w.root.clone());
                    }
                    let e = Event::TreeSynced {
                        domain: t.url.domain.clone(),
                        seq: w.root.seq,
                        nodes: w.nodes,
                        complete: w.complete,
                    };
                    self.event(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let b = "enrtree-branch:AAAAAAAAAAAAAAAAAAAA,BBBBBBBBBBBBBBBBBBBB";
        assert_eq!(Entry::parse(b).unwrap().to_string(), b);
        assert_eq!(Entry::parse("enrtree-branch:").unwrap(), Entry::Branch(vec![]));
        assert_eq!(Entry::parse("enrtree-branch:1,2"), Err(EntryError::InvalidHash));
        assert_eq!(Entry::parse("foo"), Err(EntryError::Unknown));
        assert_eq!(Entry::parse(&"x".repeat(2000)), Err(EntryError::TooLong));
        assert_eq!(entry_hash("").len(), 26);
        assert!(hash_matches(&entry_hash("abc"), "abc"));
        assert!(!hash_matches(&entry_hash("abd"), "abc"));
    }
}
