//! Filters (docs/protocol/waku.md §10): the application's subscriptions, by topics plus a symmetric key or a
//! private key, and the messages they open.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use zeroize::Zeroizing;

use super::envelope::Envelope;
use super::message::{decrypt_asymmetric, parse_plaintext, SymmetricKey};
use super::topic::Topic;
use super::WakuError;
use crate::crypto::{PublicKey, SecretKey};

/// Identifies a subscription (one [`Filter`]). The caller chooses it in
/// [`Input::Subscribe`](super::Input::Subscribe); [`WakuNode::unused_subscription_id`](super::WakuNode::unused_subscription_id)
/// names one that is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub u64);

impl core::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "subscription#{}", self.0)
    }
}

/// The key a filter opens envelopes with.
#[derive(Clone)]
pub enum FilterKey {
    /// AES-256-GCM key.
    Symmetric(Zeroizing<[u8; 32]>),
    /// Our private key for ECIES.
    Asymmetric(SecretKey),
}

impl core::fmt::Debug for FilterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FilterKey::Symmetric(_) => f.write_str("Symmetric(..)"),
            FilterKey::Asymmetric(k) => write!(f, "Asymmetric({:?})", k.public_key()),
        }
    }
}

/// A subscription.
#[derive(Clone, Debug)]
pub struct Filter {
    /// Topics to watch.
    pub topics: Vec<Topic>,
    /// How to open matching envelopes.
    pub key: FilterKey,
    /// Envelopes below this PoW are not delivered (0 = all).
    pub min_pow: f64,
    /// Also deliver envelopes from trusted peers' P2P messages (mailserver history).
    pub allow_p2p: bool,
}

impl Filter {
    /// A symmetric filter on `topics`, accepting any PoW and mailserver history.
    pub fn symmetric(topics: Vec<Topic>, key: [u8; 32]) -> Self {
        Filter {
            topics,
            key: FilterKey::Symmetric(Zeroizing::new(key)),
            min_pow: 0.0,
            allow_p2p: true,
        }
    }

    /// An asymmetric filter on `topics` for messages encrypted to `key`'s public key.
    pub fn asymmetric(topics: Vec<Topic>, key: SecretKey) -> Self {
        Filter {
            topics,
            key: FilterKey::Asymmetric(key),
            min_pow: 0.0,
            allow_p2p: true,
        }
    }
}

/// A message a filter opened.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    /// The filter that opened it.
    pub filter: SubscriptionId,
    /// The envelope topic.
    pub topic: Topic,
    /// The payload.
    pub payload: Bytes,
    /// The signer, if signed (Status signs everything with the sender's identity key).
    pub sender: Option<PublicKey>,
    /// Creation time (`expiry - ttl`), UNIX seconds.
    pub timestamp: u32,
    /// The envelope's TTL.
    pub ttl: u32,
    /// The envelope hash.
    pub envelope_hash: [u8; 32],
    /// The envelope's PoW.
    pub pow: f64,
    /// True if it came from a trusted peer's P2P message (mailserver history), not from relay.
    pub p2p: bool,
}

/// A filter with its symmetric key schedule set up once (not per envelope).
#[derive(Debug)]
struct Subscription {
    filter: Filter,
    cipher: Option<SymmetricKey>,
}

/// The set of filters, bounded by `max`.
#[derive(Debug, Default)]
pub struct Filters {
    filters: BTreeMap<SubscriptionId, Subscription>,
    /// Counts additions (a removal shrinks the count instead).
    added: u64,
    /// The highest id ever added, so [`Filters::unused_id`] never hands out an id again.
    highest: u64,
    max: usize,
}

impl Filters {
    /// An empty set holding at most `max` filters.
    pub fn new(max: usize) -> Self {
        Filters {
            filters: BTreeMap::new(),
            added: 0,
            highest: 0,
            max,
        }
    }

    /// Add a filter under `id`: `Err(DuplicateSubscription)` if `id` is taken, `Err(LimitReached)` when
    /// the cap is reached.
    pub fn add(&mut self, id: SubscriptionId, f: Filter) -> Result<(), WakuError> {
        if self.filters.contains_key(&id) {
            return Err(WakuError::DuplicateSubscription(id));
        }
        if self.filters.len() >= self.max {
            return Err(WakuError::LimitReached("filters"));
        }
        self.added += 1;
        self.highest = self.highest.max(id.0);
        let cipher = match &f.key {
            FilterKey::Symmetric(k) => Some(SymmetricKey::new(k)),
            FilterKey::Asymmetric(_) => None,
        };
        self.filters.insert(id, Subscription { filter: f, cipher });
        Ok(())
    }

    /// Remove a filter; false if there is none under `id`.
    pub fn remove(&mut self, id: SubscriptionId) -> bool {
        self.filters.remove(&id).is_some()
    }

    /// An id never used so far: one above the highest ever added (`1` at first).
    pub fn unused_id(&self) -> SubscriptionId {
        SubscriptionId(self.highest.saturating_add(1))
    }

    /// True if a filter is kept under `id`.
    pub fn contains(&self, id: SubscriptionId) -> bool {
        self.filters.contains_key(&id)
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Changes whenever a filter is added or removed (additions only grow; a removal shrinks the count).
    pub fn generation(&self) -> (u64, usize) {
        (self.added, self.filters.len())
    }

    /// Every topic some filter watches.
    pub fn topics(&self) -> BTreeSet<Topic> {
        self.filters
            .values()
            .flat_map(|s| s.filter.topics.iter().copied())
            .collect()
    }

    /// True if some filter watches `topic`.
    pub fn watches(&self, topic: &Topic) -> bool {
        self.filters.values().any(|s| s.filter.topics.contains(topic))
    }

    /// Try every filter on the envelope's topic; each that opens it yields a message. The envelope hash
    /// is computed only if some filter opens it.
    pub fn open(&self, env: &Envelope, pow: f64, p2p: bool) -> Vec<ReceivedMessage> {
        let mut out = Vec::new();
        let mut hash = None;
        for (id, s) in &self.filters {
            let f = &s.filter;
            if !f.topics.contains(&env.topic) || pow < f.min_pow || (p2p && !f.allow_p2p) {
                continue;
            }
            let msg = match (&s.cipher, &f.key) {
                (Some(cipher), _) => cipher.open(&env.data),
                (None, FilterKey::Asymmetric(sk)) => {
                    decrypt_asymmetric(sk, &env.data).and_then(|pt| parse_plaintext(&pt))
                }
                (None, FilterKey::Symmetric(k)) => SymmetricKey::new(k).open(&env.data),
            };
            let Ok(msg) = msg else { continue };
            let hash = *hash.get_or_insert_with(|| env.hash());
            out.push(ReceivedMessage {
                filter: *id,
                topic: env.topic,
                payload: msg.payload,
                sender: msg.signer,
                timestamp: env.sent(),
                ttl: env.ttl,
                envelope_hash: hash,
                pow,
                p2p,
            });
        }
        out
    }
}
