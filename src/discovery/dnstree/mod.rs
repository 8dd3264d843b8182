//! EIP-1459 node lists in DNS: the TXT entries, the `enrtree://` URL, and [`DnsTreeClient`], a sans-IO
//! machine that syncs trees by asking its driver for TXT records.
//!
//! Entries (EIP-1459 "DNS Record Structure"):
//! * `enrtree-root:v1 e=<enr-root> l=<link-root> seq=<n> sig=<base64url 65 bytes>`: signed over the
//!   Keccak-256 of the text before ` sig=`; verified (as go-ethereum does) against the tree's compressed
//!   key with the recovery id ignored and high-S rejected;
//! * `enrtree-branch:<h>,<h>,…`: child hashes; a hash is unpadded base32 of 12 to 32 bytes (go-ethereum
//!   `isValidHash`); trees publish the first 16 bytes of Keccak-256 of the child's text;
//! * `enr:<base64url>`: a node record ([`Enr`](super::enr::Enr)), only in the `e=` subtree;
//! * `enrtree://<base32 compressed key>@<domain>`: a link to another tree, only in the `l=` subtree.
//!
//! An entry at `<hash>.<domain>` is accepted only if Keccak-256 of its exact text starts with the bytes
//! of `<hash>` ("Client Protocol" step 3).
//!
//! Client ("Client Protocol"): for every configured tree the client resolves the root at `<domain>`,
//! verifies it, then walks both subtrees in random order (from its seeded RNG), tracking visited hashes
//! so a loop costs nothing, and reports every verified record as [`Event::Node`]. Linked trees are added
//! to the sync horizon. It re-checks each root every [`DnsConfig::resync_interval`]; an unchanged root
//! whose last walk completed is not walked again. [`Input::Resync`] forces an immediate re-check
//! and a full walk (the node engine calls it when its peer pool resumes discovery).
//!
//! Deviations from go-ethereum's `p2p/dnsdisc`: the walk is eager (the whole tree, within
//! [`DnsConfig::max_entries_per_tree`]) rather than lazy per requested node; an entry that fails is
//! skipped (reported as [`Event::Error`]) and the walk goes on, where go-ethereum aborts `SyncTree`;
//! linked trees are kept, not garbage-collected, once added (up to [`DnsConfig::max_trees`]); base64
//! (records, signatures) with non-zero trailing bits is rejected; a root whose `seq` is lower than one already seen for
//! that tree is rejected ([`TreeError::StaleRoot`]), as the EIP asks (go-ethereum does not check it).
//!
//! Files: `entry.rs` parses and prints the entries and URLs; `client.rs` is the [`DnsTreeClient`] machine.

mod client;
mod entry;
#[cfg(test)]
mod tests;

pub use client::{DnsConfig, DnsTreeClient, Event, Input, Output, TreeError};
pub use entry::{
    decode_hash, entry_hash, hash_matches, EnrTreeUrl, Entry, EntryError, RootEntry, BRANCH_PREFIX,
    LINK_PREFIX, MAX_DOMAIN_LEN, MAX_ENTRY_LEN, ROOT_PREFIX,
};
