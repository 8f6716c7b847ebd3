//! # Vellum node
//!
//! The storage node of Vellum, a decentralized storage network, as a library; the `vellum`
//! command line that runs it lives in the `vellum-cli` crate. [`service::start`] wires the
//! pieces below into a running node: the store, the network, the REST API and, in persistence
//! mode, the marketplace.
//!
//! **Data path** (the whitepaper's PoC0):
//! - **store** ([`store`]): datasets as one data file each plus a redb database of manifests and
//!   records; every write is crash-safe (a dataset appears in one commit) and counted against the
//!   quota.
//! - **upload** ([`api`]`::data`): the HTTP body streams into a [`store::DatasetWriter`], which
//!   cuts it into 64 KiB blocks, hashes each into the content tree ([`content::tree`]) and writes
//!   them back to back; the dataset and its [`content::Manifest`] become visible in one commit,
//!   and the node announces both CIDs in the DHT.
//! - **serve and fetch** ([`net`], [`fetch`], [`download`]): peers ask for runs of blocks over
//!   the block-exchange protocol, each block sent with its Merkle proof; a node that lacks a
//!   dataset finds providers through Kademlia, checks the manifest against its CID, pulls blocks
//!   from all providers at once, verifies every block before writing it, and streams the verified
//!   prefix to the HTTP client while the rest arrives.
//!
//! **Durability** (PoC1): [`erasure`] encodes a dataset into K + M interleaved slots;
//! [`slots`] protects a dataset, builds each slot's Poseidon2 tree, publishes the slots as
//! datasets of their own, accepts a fetched slot only against the request's dataset root, and
//! regenerates lost slots; [`repair`] fetches any K slots to decode.
//!
//! **Marketplace** (PoC2, [`market`]): the client side buys storage (protects, publishes, pays,
//! and withdraws when the request ends); the host engine sells it: a log follower dispatches
//! requests to a bounded set of supervised sale tasks, each sale a pure state machine recorded
//! before and after every chain step, run against any `MarketChain` (the wallet's alloy client,
//! or an in-memory marketplace in the unit tests); filled slots are proved every period that
//! requires it, accusations are answered, payouts collected, and the data of every ended sale
//! deleted. Contract knowledge (ids, events, states, errors, the challenge rule) comes from the
//! `contracts` crate; proofs from `prover`.
//!
//! [`metrics`] serves Prometheus counters.

pub mod api;
pub mod bandwidth;
pub mod content;
pub mod download;
pub mod erasure;
pub mod fetch;
pub mod market;
pub mod metrics;
pub mod net;
pub mod repair;
pub mod server;
pub mod service;
pub mod slots;
pub mod store;
#[cfg(test)]
mod test_support;
