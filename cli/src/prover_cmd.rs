//! `vellum prover setup|prove|verify|samples|root`: storage-proof keys, proofs of a slot on disk,
//! their verification, how many samples a target needs, and a slot file's root.
//!
//! Field elements on the command line and in JSON are 0x-prefixed big-endian hex (`uint256`), as
//! Ethereum tooling writes them.

use std::path::PathBuf;

use anyhow::{Context, bail};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use circuits::Fr;
use circuits::r1cs::{ProofShape, build_inputs, dataset_path, public_inputs};
use clap::{Args, Subcommand};
use prover::{DiskSlot, EvmProof, EvmVerifyingKey, Proof, Prover};

/// `vellum prover …`.
#[derive(Debug, Subcommand)]
pub enum ProverCommand {
    /// Make proving and verifying keys for a proof shape; prints their paths.
    Setup(SetupArgs),
    /// Prove that a slot on disk holds the cells a challenge samples; writes proof JSON.
    Prove(ProveArgs),
    /// Check a proof JSON against a verifying key; exits non-zero when it does not verify.
    Verify(VerifyArgs),
    /// How many samples catch a host that lost a fraction of its cells with a given certainty.
    Samples(SamplesArgs),
    /// Print the root of a slot's tree file (0x hex), as `--slot-roots` takes it.
    Root(RootArgs),
}

/// Flags of `vellum prover root`.
#[derive(Debug, Args)]
pub struct RootArgs {
    /// The slot's cells file.
    #[arg(long)]
    pub cells: PathBuf,
    /// The slot's tree file.
    #[arg(long)]
    pub tree: PathBuf,
    /// Bytes per cell.
    #[arg(long, default_value_t = 2048)]
    pub cell_size: usize,
    /// A slot holds 2^slot_depth cells.
    #[arg(long, default_value_t = 19)]
    pub slot_depth: u32,
}

/// Flags of `vellum prover setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Cells sampled per proof.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// A slot holds 2^slot_depth cells.
    #[arg(long, default_value_t = 19)]
    pub slot_depth: u32,
    /// Levels of the dataset tree (1: up to 8 slots, 2: up to 64).
    #[arg(long, default_value_t = 1)]
    pub dataset_levels: usize,
    /// Bytes per cell.
    #[arg(long, default_value_t = 2048)]
    pub cell_size: usize,
    /// Directory for the key files.
    #[arg(long, default_value = "keys")]
    pub out: PathBuf,
}

/// Flags of `vellum prover prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// Proving key file (`<hash>.pk`).
    #[arg(long)]
    pub key: PathBuf,
    /// The slot's cells file.
    #[arg(long)]
    pub cells: PathBuf,
    /// The slot's tree file.
    #[arg(long)]
    pub tree: PathBuf,
    /// Which slot of the dataset this is.
    #[arg(long)]
    pub slot_index: u64,
    /// Every slot root of the dataset, in order (comma-separated hex).
    #[arg(long, value_delimiter = ',', required = true)]
    pub slot_roots: Vec<String>,
    /// The challenge's block hash (hex); the entropy is it modulo the field's order.
    #[arg(long)]
    pub block_hash: String,
    /// Where to write the proof JSON (`-` for standard output).
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
}

/// Flags of `vellum prover verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verifying key file (`<hash>.vk`).
    #[arg(long)]
    pub vk: PathBuf,
    /// Proof JSON from `vellum prover prove`.
    #[arg(long)]
    pub proof: PathBuf,
}

/// Flags of `vellum prover samples`.
#[derive(Debug, Args)]
pub struct SamplesArgs {
    /// Fraction of its cells the host lost (0–1).
    #[arg(long)]
    pub lost: f64,
    /// Highest acceptable chance that such a host passes one proof.
    #[arg(long, default_value_t = 1e-6)]
    pub target: f64,
}

fn hex_word(s: &str) -> anyhow::Result<[u8; 32]> {
    let digits = s.trim().trim_start_matches("0x");
    if digits.is_empty() || digits.len() > 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{s:?} is not a hex number of at most 32 bytes");
    }
    let padded = format!("{digits:0>64}");
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

/// A canonical field element from big-endian hex.
fn hex_fr(s: &str) -> anyhow::Result<Fr> {
    let mut le = hex_word(s)?;
    le.reverse();
    circuits::fr_from_bytes(&le).with_context(|| format!("{s} is not below the field's order"))
}

fn fr_hex(x: &Fr) -> String {
    let mut be = circuits::fr_to_bytes(x);
    be.reverse();
    format!("0x{}", be.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Runs a `vellum prover` subcommand.
pub(super) fn run(command: ProverCommand) -> anyhow::Result<()> {
    match command {
        ProverCommand::Root(a) => {
            let slot = DiskSlot::open(&a.cells, &a.tree, a.cell_size, 1u64 << a.slot_depth.min(40))?;
            println!("{}", fr_hex(&slot.root()?));
            Ok(())
        }
        ProverCommand::Setup(a) => {
            let shape = ProofShape {
                samples: a.samples,
                slot_depth: a.slot_depth,
                dataset_levels: a.dataset_levels,
                cell_size: a.cell_size,
            };
            let started = std::time::Instant::now();
            let keys = prover::setup(&shape)?;
            let (pk, vk) = prover::write_keys(&keys, &a.out)?;
            let evm = a.out.join(format!("{}.json", vk.file_name().and_then(|n| n.to_str()).unwrap_or("vk")));
            std::fs::write(&evm, EvmVerifyingKey::new(&keys.pk.vk).to_json())?;
            println!("constraints: {}", keys.num_constraints);
            println!("proving key: {}", pk.display());
            println!("verifying key: {}", vk.display());
            println!("verifying key for the EVM verifier: {}", evm.display());
            println!("setup took {:.1} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        ProverCommand::Prove(a) => {
            let keys = prover::read_proving_key(&a.key)?;
            let shape = keys.shape;
            let roots = a.slot_roots.iter().map(|r| hex_fr(r)).collect::<anyhow::Result<Vec<_>>>()?;
            if a.slot_index >= roots.len() as u64 {
                bail!("slot index {} but only {} slot roots", a.slot_index, roots.len());
            }
            let slot = DiskSlot::open(&a.cells, &a.tree, shape.cell_size, shape.slot_cells())?;
            let root = slot.root()?;
            if root != roots[a.slot_index as usize] {
                bail!(
                    "the slot's tree root {} is not slot root {} of the dataset ({})",
                    fr_hex(&root),
                    a.slot_index,
                    fr_hex(&roots[a.slot_index as usize])
                );
            }
            let entropy = prover::entropy_from_block_hash(&hex_word(&a.block_hash)?);
            let dataset_root = circuits::dataset_root(&roots);
            let path = dataset_path(&roots, a.slot_index);
            if path.len() != shape.dataset_levels {
                bail!(
                    "{} slots make {} dataset levels; the key is for {}",
                    roots.len(),
                    path.len(),
                    shape.dataset_levels
                );
            }
            let inputs = build_inputs(&shape, &slot, path, dataset_root, entropy, a.slot_index)?;
            let started = std::time::Instant::now();
            let proof = Prover::new(keys).prove(&inputs)?;
            let mut compressed = Vec::new();
            proof.serialize_compressed(&mut compressed)?;
            let public: Vec<String> = public_inputs(dataset_root, entropy, a.slot_index).iter().map(fr_hex).collect();
            let json = serde_json::json!({
                "datasetRoot": fr_hex(&dataset_root),
                "entropy": fr_hex(&entropy),
                "slotIndex": a.slot_index,
                "publicInputs": public,
                "proof": serde_json::from_str::<serde_json::Value>(&EvmProof::new(&proof).to_json())?,
                "proofCompressed": format!("0x{}", compressed.iter().map(|b| format!("{b:02x}")).collect::<String>()),
                "proveSeconds": started.elapsed().as_secs_f64(),
            });
            let text = serde_json::to_string_pretty(&json)?;
            if a.out.as_os_str() == "-" {
                println!("{text}");
            } else {
                std::fs::write(&a.out, text)?;
            }
            Ok(())
        }
        ProverCommand::Verify(a) => {
            let (_, vk) = prover::read_verifying_key(&a.vk)?;
            let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&a.proof)?)?;
            let field = |name: &str| {
                json.get(name).and_then(|v| v.as_str()).with_context(|| format!("proof JSON lacks {name}"))
            };
            let slot_index =
                json.get("slotIndex").and_then(serde_json::Value::as_u64).context("proof JSON lacks slotIndex")?;
            let bytes = hex_bytes(field("proofCompressed")?)?;
            let proof = Proof::deserialize_compressed(bytes.as_slice()).context("proofCompressed is not a proof")?;
            if prover::verify(&vk, hex_fr(field("datasetRoot")?)?, hex_fr(field("entropy")?)?, slot_index, &proof) {
                println!("valid");
                Ok(())
            } else {
                bail!("the proof does not verify")
            }
        }
        ProverCommand::Samples(a) => {
            let Some(n) = prover::samples_needed(a.lost, a.target) else {
                bail!("need 0 < lost ≤ 1 and 0 < target < 1");
            };
            println!(
                "{n} samples: a host that lost {:.4} % of its cells passes one proof with probability {:.3e} (target {:.1e})",
                a.lost * 100.0,
                prover::pass_probability(a.lost, n),
                a.target
            );
            Ok(())
        }
    }
}

fn hex_bytes(s: &str) -> anyhow::Result<Vec<u8>> {
    let digits = s.trim().trim_start_matches("0x");
    if !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("not hex bytes");
    }
    (0..digits.len()).step_by(2).map(|i| Ok(u8::from_str_radix(&digits[i..i + 2], 16)?)).collect()
}
