//! `vellum bench prove`: the storage-proof circuit's size per slot depth, and Groth16 setup,
//! proving and verifying on a real slot (2^depth cells written to disk with their tree), beside
//! the same proof through arkworks' own per-proof constraint synthesis.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use ark_serialize::CanonicalSerialize;
use circuits::Fr;
use circuits::r1cs::{ProofShape, R1cs, build_inputs, dataset_path};
use clap::Args;
use prover::{DiskSlot, Prover};

/// Flags of `vellum bench prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// Slot depths whose constraint counts are listed (2^depth cells).
    #[arg(long = "count-depth", default_values_t = [16u32, 19, 22])]
    pub count_depths: Vec<u32>,
    /// Slot depth of the proving runs.
    #[arg(long, default_value_t = 19)]
    pub depth: u32,
    /// Samples per proof in the proving runs.
    #[arg(long = "samples", default_values_t = [10usize, 50, 100])]
    pub samples: Vec<usize>,
    /// Cell size in bytes.
    #[arg(long, default_value_t = 2048)]
    pub cell_size: usize,
    /// Proofs per shape; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also prove through arkworks' per-proof constraint synthesis, for the ratio.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub compare: bool,
    /// Directory for the slot and key files (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Starts a new peak-RSS measurement (Linux: writing 5 to clear_refs resets VmHWM); false if
/// the kernel refused, in which case the peak covers the whole run.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory of this process since the last reset (or start), in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Writes a slot of 2^depth pseudo-random cells and its tree as the node lays them out.
fn write_slot(dir: &Path, depth: u32, cell_size: usize) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let cells_path = dir.join("slot.cells");
    let tree_path = dir.join("slot.tree");
    let cells = 1usize << depth;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&cells_path)?);
    let mut leaves = Vec::with_capacity(cells);
    let chunk_cells = 4096;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for first in (0..cells).step_by(chunk_cells) {
        let n = chunk_cells.min(cells - first);
        let mut buf = vec![0u8; n * cell_size];
        for w in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            w.copy_from_slice(&state.to_le_bytes());
        }
        out.write_all(&buf)?;
        leaves.extend(circuits::hash_cells(&buf, cell_size, 2));
    }
    out.flush()?;
    let mut tree = std::io::BufWriter::new(std::fs::File::create(&tree_path)?);
    for level in circuits::tree_levels(&leaves) {
        for node in level {
            tree.write_all(&circuits::fr_to_bytes(&node))?;
        }
    }
    tree.flush()?;
    Ok((cells_path, tree_path))
}

/// The matrices replayed with values into arkworks' constraint system: what a prover that
/// synthesises the circuit for every proof pays.
struct Synthesised<'a> {
    r1cs: &'a R1cs,
    assignment: &'a [Fr],
}

impl ConstraintSynthesizer<Fr> for Synthesised<'_> {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let r1cs = self.r1cs;
        let mut vars = Vec::with_capacity(self.assignment.len());
        vars.push(Variable::One);
        for i in 0..r1cs.num_inputs {
            vars.push(cs.new_input_variable(|| Ok(self.assignment[1 + i]))?);
        }
        for i in 0..r1cs.num_witness {
            vars.push(cs.new_witness_variable(|| Ok(self.assignment[1 + r1cs.num_inputs + i]))?);
        }
        let lc = |row: &[(Fr, usize)]| LinearCombination(row.iter().map(|(c, v)| (*c, vars[*v])).collect());
        for i in 0..r1cs.num_constraints() {
            cs.enforce_r1cs_constraint(|| lc(&r1cs.a[i]), || lc(&r1cs.b[i]), || lc(&r1cs.c[i]))?;
        }
        Ok(())
    }
}

/// Runs the benchmark and prints its tables.
pub(super) fn prove(args: ProveArgs) -> anyhow::Result<()> {
    println!(
        "vellum bench prove: storage proofs, {} B cells, Groth16 over BN254, median of {} runs",
        args.cell_size,
        args.runs.max(1)
    );
    println!();
    println!(
        "| slot depth | cells per slot | 10 samples | 100 samples | per sample at 100, all included | shared slot-tree nodes (10 / 100 samples) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &depth in &args.count_depths {
        let count = |samples| -> anyhow::Result<(usize, usize)> {
            let shape = ProofShape { samples, slot_depth: depth, dataset_levels: 1, cell_size: args.cell_size };
            Ok((prover::matrices(&shape)?.num_constraints(), shape.shared_nodes()))
        };
        let ((ten, shared_ten), (hundred, shared_hundred)) = (count(10)?, count(100)?);
        println!(
            "| {depth} | {} | {ten} | {hundred} | {} | {shared_ten} / {shared_hundred} |",
            1u64 << depth,
            hundred / 100
        );
    }

    let tmp = std::env::temp_dir().join(format!("vellum-bench-prove-{}", std::process::id()));
    let dir = args.dir.clone().unwrap_or(tmp);
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let (cells_path, tree_path) = write_slot(&dir, args.depth, args.cell_size).context("writing the slot")?;
    println!();
    println!(
        "slot: 2^{} cells ({} MiB) written and hashed in {:.1} s",
        args.depth,
        ((1u64 << args.depth) * args.cell_size as u64) >> 20,
        started.elapsed().as_secs_f64()
    );
    let slot = DiskSlot::open(&cells_path, &tree_path, args.cell_size, 1 << args.depth)?;
    let slot_root = slot.root()?;
    let roots = [slot_root, Fr::from(1u64), Fr::from(2u64), Fr::from(3u64)];
    let dataset_root = circuits::dataset_root(&roots);

    println!();
    println!(
        "| samples | constraints | setup s | pk MB | vk B | witness s | prove s (witness + Groth16) | s per million constraints | portable (no IFMA) s | arkworks prover, same witness s | arkworks with per-proof synthesis s | ratio | verify ms | proof B | peak RSS while proving MB | peak RSS of setup MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &samples in &args.samples {
        let shape = ProofShape { samples, slot_depth: args.depth, dataset_levels: 1, cell_size: args.cell_size };
        reset_peak_rss();
        let started = Instant::now();
        let keys = prover::setup(&shape)?;
        let setup_s = started.elapsed().as_secs_f64();
        let setup_peak = peak_rss_mb();
        let (pk_path, vk_path) = prover::write_keys(&keys, &dir.join("keys"))?;
        let (pk_mb, vk_b) = (std::fs::metadata(&pk_path)?.len() as f64 / 1e6, std::fs::metadata(&vk_path)?.len());
        let constraints = keys.num_constraints;
        let verifier = prover::Verifier::new(&keys.pk.vk);
        let prover = Prover::new(keys);
        let (mut witness_s, mut prove_s, mut verify_ms, mut synth_s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut ark_s = Vec::new();
        let mut prove_peak_mb = Vec::new();
        let mut proof_bytes = 0;
        for run in 0..args.runs.max(1) {
            let entropy = prover::entropy_from_block_hash(&[run as u8 + 1; 32]);
            let inputs = build_inputs(&shape, &slot, dataset_path(&roots, 0), dataset_root, entropy, 0)?;
            let reset = reset_peak_rss();
            let started = Instant::now();
            let assignment = prover.witness(&inputs)?;
            witness_s.push(started.elapsed().as_secs_f64());
            let proof = prover.prove_assignment(&assignment)?;
            prove_s.push(started.elapsed().as_secs_f64());
            if reset {
                prove_peak_mb.push(peak_rss_mb());
            }
            // As a validator checks a published proof: from its eight words, with a key
            // prepared once (decoding and the subgroup check included).
            let words = prover::EvmProof::new(&proof).words();
            let started = Instant::now();
            for _ in 0..10 {
                let valid = prover::verify_words(&verifier, dataset_root, entropy, 0, &words)?;
                anyhow::ensure!(valid, "the proof does not verify");
            }
            verify_ms.push(started.elapsed().as_secs_f64() * 100.0);
            proof_bytes = proof.compressed_size();
            if args.compare && run == 0 {
                let started = Instant::now();
                let theirs = prover.prove_assignment_arkworks(&assignment)?;
                ark_s.push(started.elapsed().as_secs_f64() + median(witness_s.clone()));
                anyhow::ensure!(prover.verify(dataset_root, entropy, 0, &theirs), "the arkworks proof does not verify");
                let r1cs = prover::matrices(&shape)?;
                let mut rng = ark_std_rng();
                let started = Instant::now();
                let circuit = Synthesised { r1cs: &r1cs, assignment: &assignment };
                let slow = Groth16::<ark_bn254::Bn254>::create_random_proof_with_reduction(
                    circuit,
                    &prover.keys().pk,
                    &mut rng,
                )?;
                synth_s.push(started.elapsed().as_secs_f64());
                anyhow::ensure!(
                    prover.verify(dataset_root, entropy, 0, &slow),
                    "the synthesised proof does not verify"
                );
            }
        }
        // The portable path (what CPUs without AVX-512 IFMA run), once, after the runs above so
        // that its second copy of the keys stays out of their memory figures.
        let portable = if args.compare {
            drop(prover);
            let portable = Prover::portable(prover::read_proving_key(&pk_path)?);
            let entropy = prover::entropy_from_block_hash(&[9; 32]);
            let inputs = build_inputs(&shape, &slot, dataset_path(&roots, 0), dataset_root, entropy, 0)?;
            let started = Instant::now();
            let proof = portable.prove(&inputs)?;
            let took = started.elapsed().as_secs_f64();
            anyhow::ensure!(portable.verify(dataset_root, entropy, 0, &proof), "the portable proof does not verify");
            format!("{took:.2}")
        } else {
            "-".to_owned()
        };
        let p = median(prove_s);
        let s = median(synth_s);
        let (synth, ratio) =
            if s > 0.0 { (format!("{s:.2}"), format!("{:.1}×", s / p)) } else { ("-".into(), "-".into()) };
        let ark = if ark_s.is_empty() { "-".to_owned() } else { format!("{:.2}", median(ark_s)) };
        let prove_peak =
            if prove_peak_mb.is_empty() { "-".to_owned() } else { format!("{:.0}", median(prove_peak_mb)) };
        println!(
            "| {samples} | {constraints} | {setup_s:.1} | {pk_mb:.0} | {vk_b} | {:.2} | {p:.2} | {:.2} | {portable} | {ark} | {synth} | {ratio} | {:.2} | {proof_bytes} | {} | {:.0} |",
            median(witness_s),
            p / (constraints as f64 / 1e6),
            median(verify_ms),
            prove_peak,
            setup_peak
        );
    }
    if args.dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}

fn ark_std_rng() -> impl ark_std::rand::RngCore {
    use ark_std::rand::SeedableRng;
    ark_std::rand::rngs::StdRng::from_seed(rand::random())
}
