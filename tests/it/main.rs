//! Vellum's end-to-end scenarios, compiled as one test binary (one module per scenario).
//! Each starts real `vellum node` processes on loopback with free ports.

mod adversarial_host;
mod api_hardening;
mod api_surface;
mod bad_input;
mod bandwidth_channels;
mod chain;
mod corrupt_peer;
mod crash_recovery;
mod deploy;
mod devnet;
mod disk_full;
mod download_failover;
mod durability_cli;
mod encryption;
mod lazy_repair;
mod offchain_proofs;
mod openapi_conformance;
mod paid_bandwidth;
mod protect;
mod prover_cli;
mod rules;
mod slot_files;
mod storage_requests;
mod tutorial;
mod validator;
