//! Setup and key files.
//!
//! Setup lays the circuit out once as matrices (`circuits::r1cs::MatrixBuilder`), replays them into
//! arkworks' constraint system, and runs Groth16's generator with toxic waste drawn from the OS's
//! generator and then dropped. Key files are named by the BLAKE3 hash of their bytes
//! (`<hash>.pk`, `<hash>.vk`) and carry the proof shape they were made for; loading recomputes the
//! hash, so a damaged or swapped file is refused instead of producing proofs that never verify.

use std::fs;
use std::path::{Path, PathBuf};

use ark_bn254::{Bn254, Fr};
use ark_ff::Zero;
use ark_groth16::{Groth16, ProvingKey};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use ark_std::rand::SeedableRng;
use circuits::r1cs::{MatrixBuilder, ProofInputs, ProofShape, R1cs, StorageProofError, synthesize};
use rand::RngCore;

/// A Groth16 verifying key over BN254.
pub type VerifyingKey = ark_groth16::VerifyingKey<Bn254>;

/// One of the three constraint matrices, row by row: (coefficient, variable).
pub(crate) type Matrix = Vec<Vec<(Fr, usize)>>;

const PK_MAGIC: &[u8; 10] = b"VELLUM-PK\x01";
const VK_MAGIC: &[u8; 10] = b"VELLUM-VK\x01";

/// Why setup or a key file failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The shape is out of range.
    #[error(transparent)]
    Shape(#[from] StorageProofError),
    /// arkworks refused the circuit.
    #[error("groth16 setup: {0}")]
    Synthesis(#[from] SynthesisError),
    /// Reading or writing a key file.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A key file that is not what its name or header says.
    #[error("key file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Everything proving needs: the shape, its constraint matrices and the proving key.
pub struct Keys {
    /// What the keys prove.
    pub shape: ProofShape,
    /// Constraints.
    pub num_constraints: usize,
    /// Public inputs (without the constant one).
    pub num_inputs: usize,
    /// Private witness variables.
    pub num_witness: usize,
    /// A, B and C.
    pub(crate) matrices: [Matrix; 3],
    /// The proving key (its verifying key inside).
    pub pk: ProvingKey<Bn254>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("shape", &self.shape).field("num_constraints", &self.num_constraints).finish()
    }
}

/// The constraint matrices of a shape.
pub fn matrices(shape: &ProofShape) -> Result<R1cs, KeyError> {
    let mut builder = MatrixBuilder::new();
    synthesize(&mut builder, shape, &ProofInputs::blank(shape))?;
    Ok(builder.finish())
}

/// Replays recorded matrices into arkworks' constraint system (setup only).
struct Replay<'a>(&'a R1cs);

impl ConstraintSynthesizer<Fr> for Replay<'_> {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let r1cs = self.0;
        let mut vars = Vec::with_capacity(1 + r1cs.num_inputs + r1cs.num_witness);
        vars.push(Variable::One);
        for _ in 0..r1cs.num_inputs {
            vars.push(cs.new_input_variable(|| Ok(Fr::zero()))?);
        }
        for _ in 0..r1cs.num_witness {
            vars.push(cs.new_witness_variable(|| Ok(Fr::zero()))?);
        }
        let lc = |row: &[(Fr, usize)]| LinearCombination(row.iter().map(|(c, v)| (*c, vars[*v])).collect());
        for i in 0..r1cs.num_constraints() {
            cs.enforce_r1cs_constraint(|| lc(&r1cs.a[i]), || lc(&r1cs.b[i]), || lc(&r1cs.c[i]))?;
        }
        Ok(())
    }
}

/// A generator seeded from the operating system's.
pub(crate) fn os_seeded_rng() -> ark_std::rand::rngs::StdRng {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    ark_std::rand::rngs::StdRng::from_seed(seed)
}

/// Runs the Groth16 setup for `shape`.
pub fn setup(shape: &ProofShape) -> Result<Keys, KeyError> {
    let r1cs = matrices(shape)?;
    let pk = Groth16::<Bn254>::generate_random_parameters_with_reduction(Replay(&r1cs), &mut os_seeded_rng())?;
    Ok(keys_from(*shape, r1cs, pk))
}

fn keys_from(shape: ProofShape, r1cs: R1cs, pk: ProvingKey<Bn254>) -> Keys {
    let (num_constraints, num_inputs, num_witness) = (r1cs.num_constraints(), r1cs.num_inputs, r1cs.num_witness);
    Keys { shape, num_constraints, num_inputs, num_witness, matrices: [r1cs.a, r1cs.b, r1cs.c], pk }
}

fn shape_bytes(shape: &ProofShape) -> Vec<u8> {
    [shape.samples as u64, u64::from(shape.slot_depth), shape.dataset_levels as u64, shape.cell_size as u64]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn parse_header(bytes: &[u8], magic: &[u8; 10], path: &Path) -> Result<(ProofShape, usize), KeyError> {
    let corrupt = |reason: &str| KeyError::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
    if bytes.len() < 42 || &bytes[..10] != magic {
        return Err(corrupt("not a Vellum key file of this kind"));
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[10 + 8 * i..18 + 8 * i]);
        u64::from_le_bytes(w)
    };
    let as_usize = |v: u64| usize::try_from(v).map_err(|_| corrupt("shape out of range"));
    let shape = ProofShape {
        samples: as_usize(word(0))?,
        slot_depth: u32::try_from(word(1)).map_err(|_| corrupt("shape out of range"))?,
        dataset_levels: as_usize(word(2))?,
        cell_size: as_usize(word(3))?,
    };
    Ok((shape, 42))
}

/// The name a key file's bytes give it.
fn hashed_name(bytes: &[u8], extension: &str) -> String {
    format!("{}.{extension}", &blake3::hash(bytes).to_hex()[..32])
}

fn read_checked(path: &Path, extension: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = fs::read(path).map_err(|source| KeyError::Io { path: path.to_owned(), source })?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name != hashed_name(&bytes, extension) {
        return Err(KeyError::Corrupt {
            path: path.to_owned(),
            reason: "its bytes do not hash to its name (damaged, or renamed)".into(),
        });
    }
    Ok(bytes)
}

/// Writes the proving and verifying keys into `dir`, named by their hashes; returns both paths.
pub fn write_keys(keys: &Keys, dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let serial =
        |e: ark_serialize::SerializationError| KeyError::Corrupt { path: dir.to_owned(), reason: e.to_string() };
    let mut pk = PK_MAGIC.to_vec();
    pk.extend(shape_bytes(&keys.shape));
    keys.pk.serialize_uncompressed(&mut pk).map_err(serial)?;
    let mut vk = VK_MAGIC.to_vec();
    vk.extend(shape_bytes(&keys.shape));
    keys.pk.vk.serialize_compressed(&mut vk).map_err(serial)?;
    let pk_path = dir.join(hashed_name(&pk, "pk"));
    let vk_path = dir.join(hashed_name(&vk, "vk"));
    fs::write(&pk_path, &pk).map_err(io(&pk_path))?;
    fs::write(&vk_path, &vk).map_err(io(&vk_path))?;
    Ok((pk_path, vk_path))
}

/// Loads a proving key file and lays out its circuit's matrices again.
pub fn read_proving_key(path: &Path) -> Result<Keys, KeyError> {
    let bytes = read_checked(path, "pk")?;
    let (shape, at) = parse_header(&bytes, PK_MAGIC, path)?;
    // The hash matched the name this file was written under: the points are ours, so the
    // (slow) subgroup checks are skipped.
    let pk = ProvingKey::<Bn254>::deserialize_uncompressed_unchecked(&bytes[at..])
        .map_err(|e| KeyError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
    let r1cs = matrices(&shape)?;
    if pk.vk.gamma_abc_g1.len() != r1cs.num_inputs + 1 || pk.a_query.len() != 1 + r1cs.num_inputs + r1cs.num_witness {
        return Err(KeyError::Corrupt { path: path.to_owned(), reason: "key does not match its shape".into() });
    }
    Ok(keys_from(shape, r1cs, pk))
}

/// The verifying key inside a proving key file, with its shape: the file is read and its hash
/// checked, but the circuit is not laid out again (cheap next to [`read_proving_key`]).
pub fn read_proving_key_vk(path: &Path) -> Result<(ProofShape, VerifyingKey), KeyError> {
    let bytes = read_checked(path, "pk")?;
    let (shape, at) = parse_header(&bytes, PK_MAGIC, path)?;
    // A proving key serialises its verifying key first.
    let vk = VerifyingKey::deserialize_uncompressed_unchecked(&bytes[at..])
        .map_err(|e| KeyError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
    Ok((shape, vk))
}

/// Loads a verifying key file: the shape and the key.
pub fn read_verifying_key(path: &Path) -> Result<(ProofShape, VerifyingKey), KeyError> {
    let bytes = read_checked(path, "vk")?;
    let (shape, at) = parse_header(&bytes, VK_MAGIC, path)?;
    let vk = VerifyingKey::deserialize_compressed(&bytes[at..])
        .map_err(|e| KeyError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
    Ok((shape, vk))
}
