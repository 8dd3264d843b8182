//! The EIP-1459 client ("Client Protocol"): a sans-IO machine that syncs trees by asking its driver for
//! TXT records (see the [parent module](super) for the behaviour and the deviations from go-ethereum).

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_core::RngCore;

use crate::rng::{Rng, Seed};
use crate::time::Timestamp;

use super::super::enr::Enr;
use super::super::DiscoveryError;
use super::entry::{hash_matches, EnrTreeUrl, Entry, EntryError, RootEntry, ROOT_PREFIX};

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
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// Re-check every root now and walk each tree again even if its root is unchanged (for a peer pool
    /// that resumes discovery: records seen before get a second chance). Walks under way go on.
    Resync,
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

    /// Feed an answer from the driver, or [`Input::Resync`]. Bad answers become [`Event::Error`]; an
    /// answer for a name with no query outstanding is ignored. No input is misuse today: the `Result` is
    /// there so a future check can refuse one without changing the signature.
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), DiscoveryError> {
        match input {
            Input::TxtRecords { name, texts } => {
                if !self.queries.contains_key(&name) {
                    return Ok(());
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
            Input::Resync => self.resync(now),
        }
        self.pump(now);
        Ok(())
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

    /// See [`Input::Resync`]; the caller pumps.
    fn resync(&mut self, now: Timestamp) {
        for t in &mut self.trees {
            t.synced = None;
            if let TreeState::Idle { at } = &mut t.state {
                *at = (*at).min(now);
            }
        }
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
