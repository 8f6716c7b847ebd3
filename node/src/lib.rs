//! # Vellum node
//!
//! The storage node of Vellum, a decentralized storage network, and the `vellum` command line.
//!
//! Bird's-eye view of the data path (the whitepaper's PoC0):
//!
//! - **upload** (`api::data`): the HTTP body streams into a [`store::DatasetWriter`], which cuts it
//!   into 64 KiB blocks, hashes each into the content tree ([`content::tree`]) and writes them
//!   back to back into one file; the dataset and its [`content::Manifest`] become visible in one
//!   redb commit, and the node announces both CIDs in the DHT.
//! - **serve** (`net::serve`): peers ask for runs of blocks over the block-exchange protocol
//!   ([`net::exchange`]); each block goes out with its Merkle proof.
//! - **download** ([`fetch`], [`download`]): a node that lacks a dataset finds providers through
//!   Kademlia, checks the manifest against its CID, pulls blocks from all providers at once,
//!   verifies every block against the tree root before writing it, and streams the verified
//!   prefix to the HTTP client while the rest arrives.
//!
//! [`service::start`] wires the pieces; [`cli`] is the `vellum` binary's front end.

pub mod api;
pub mod content;
pub mod download;
pub mod erasure;
pub mod fetch;
pub mod market;
pub mod metrics;
pub mod net;
pub mod repair;
pub mod service;
pub mod slots;
pub mod store;
#[cfg(test)]
mod test_support;
