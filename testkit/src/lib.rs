//! The kit Vellum's end-to-end scenarios, the devnet and the benchmarks share to run a network
//! on this machine: `vellum node` child processes ([`process`]), a node driven through its REST
//! API ([`test_node`]), and a local chain with the contracts deployed and funded wallets, a
//! cuttable proxy to it and log helpers ([`chain`]).
//!
//! The node library does not depend on this crate; the `vellum` binary does, and so do the
//! scenarios in `tests/`.

pub mod chain;
pub mod process;
pub mod test_node;

pub use self::chain::{
    MarketNet, PERIOD, Proxy, SHAPE, ValidatorProcess, anvil_address, file_contains, json, strs, wait_for,
};
pub use self::process::NodeProcess;
pub use self::test_node::{TestNode, test_bytes, vellum_binary, write_test_file};
