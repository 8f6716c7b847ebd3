//! R1CS for the storage proof, written once and run in two modes.
//!
//! The circuit code (`gadgets.rs`, `storage.rs`) is generic over [`Cs`], which allocates variables
//! and records constraints `a · b = c` over linear combinations. Two implementations:
//! - [`MatrixBuilder`] records the constraint matrices and no values: run once per proving key;
//! - [`WitnessBuilder`] computes the values only (linear combinations are plain field elements, a
//!   constraint is one multiplication to check it): run once per proof, it is the native witness
//!   computation, and it reports the first unsatisfied constraint, so a bad input fails in
//!   milliseconds instead of after a whole proof.
//!
//! Both allocate variables in the same order (the circuit never branches on values), so the
//! witness vector lines up with the matrices. Variable 0 is the constant one, then the public
//! inputs, then the private witness, as Groth16 implementations lay them out.

mod gadgets;
mod storage;

pub use storage::{
    ProofInputs, ProofShape, SampleInputs, SlotSource, StorageProofError, build_inputs, dataset_path, public_inputs,
    sample_indices, synthesize,
};

#[cfg(test)]
mod tests;

use ark_bn254::Fr;
use ark_ff::{One, Zero};

/// A constraint system the circuit code writes to (see the module documentation).
pub trait Cs {
    /// A linear combination of variables (or, when only values are computed, its value).
    type V: Clone;
    /// The constant `c`.
    fn constant(&self, c: Fr) -> Self::V;
    /// `a + b`.
    fn add(&self, a: &Self::V, b: &Self::V) -> Self::V;
    /// `a − b`.
    fn sub(&self, a: &Self::V, b: &Self::V) -> Self::V;
    /// `c · a`.
    fn scale(&self, a: &Self::V, c: Fr) -> Self::V;
    /// A new public input with value `value` (all public inputs come before any witness).
    fn input(&mut self, value: Fr) -> Self::V;
    /// A new private witness variable with value `value`.
    fn witness(&mut self, value: Fr) -> Self::V;
    /// A new variable constrained to equal `a · b`.
    fn mul(&mut self, a: &Self::V, b: &Self::V) -> Self::V;
    /// The constraint `a · b = c`.
    fn enforce(&mut self, a: &Self::V, b: &Self::V, c: &Self::V);
    /// The value of `a` (zero when only matrices are recorded).
    fn value(&self, a: &Self::V) -> Fr;

    /// The constraint `a = b`.
    fn enforce_equal(&mut self, a: &Self::V, b: &Self::V) {
        let (one, zero) = (self.constant(Fr::one()), self.constant(Fr::zero()));
        let diff = self.sub(a, b);
        self.enforce(&diff, &one, &zero);
    }
}

/// A sparse linear combination: (variable, coefficient), sorted by variable, no zero coefficients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lc(Vec<(usize, Fr)>);

impl Lc {
    fn var(index: usize) -> Lc {
        Lc(vec![(index, Fr::one())])
    }

    fn merge(a: &Lc, b: &Lc, b_coeff: Fr) -> Lc {
        let mut out = Vec::with_capacity(a.0.len() + b.0.len());
        let (mut i, mut j) = (0, 0);
        while i < a.0.len() || j < b.0.len() {
            let take_a = j >= b.0.len() || (i < a.0.len() && a.0[i].0 < b.0[j].0);
            let take_b = i >= a.0.len() || (j < b.0.len() && b.0[j].0 < a.0[i].0);
            let (var, coeff) = if take_a {
                i += 1;
                a.0[i - 1]
            } else if take_b {
                j += 1;
                (b.0[j - 1].0, b.0[j - 1].1 * b_coeff)
            } else {
                i += 1;
                j += 1;
                (a.0[i - 1].0, a.0[i - 1].1 + b.0[j - 1].1 * b_coeff)
            };
            if !coeff.is_zero() {
                out.push((var, coeff));
            }
        }
        Lc(out)
    }

    /// The terms.
    pub fn terms(&self) -> &[(usize, Fr)] {
        &self.0
    }
}

/// The constraint matrices of a circuit: row `i` of `a`, `b`, `c` holds constraint `i`'s linear
/// combinations as (coefficient, variable) pairs, variable 0 being the constant one.
#[derive(Clone, Debug, Default)]
pub struct R1cs {
    /// Public inputs (not counting the constant one).
    pub num_inputs: usize,
    /// Private witness variables.
    pub num_witness: usize,
    /// The A matrix.
    pub a: Vec<Vec<(Fr, usize)>>,
    /// The B matrix.
    pub b: Vec<Vec<(Fr, usize)>>,
    /// The C matrix.
    pub c: Vec<Vec<(Fr, usize)>>,
}

impl R1cs {
    /// Constraints.
    pub fn num_constraints(&self) -> usize {
        self.a.len()
    }

    /// Whether `assignment` (one, inputs, witness) satisfies every constraint; the first that
    /// fails otherwise.
    pub fn check(&self, assignment: &[Fr]) -> Result<(), usize> {
        let eval = |row: &[(Fr, usize)]| row.iter().map(|(c, v)| *c * assignment[*v]).sum::<Fr>();
        for i in 0..self.a.len() {
            if eval(&self.a[i]) * eval(&self.b[i]) != eval(&self.c[i]) {
                return Err(i);
            }
        }
        Ok(())
    }
}

/// Records the constraint matrices (see the module documentation).
#[derive(Debug, Default)]
pub struct MatrixBuilder {
    next_var: usize,
    r1cs: R1cs,
}

impl MatrixBuilder {
    /// An empty system (variable 0, the constant one, exists).
    pub fn new() -> Self {
        MatrixBuilder { next_var: 1, r1cs: R1cs::default() }
    }

    /// The matrices.
    pub fn finish(self) -> R1cs {
        self.r1cs
    }

    fn row(lc: &Lc) -> Vec<(Fr, usize)> {
        lc.0.iter().map(|(v, c)| (*c, *v)).collect()
    }
}

impl Cs for MatrixBuilder {
    type V = Lc;

    fn constant(&self, c: Fr) -> Lc {
        if c.is_zero() { Lc::default() } else { Lc(vec![(0, c)]) }
    }
    fn add(&self, a: &Lc, b: &Lc) -> Lc {
        Lc::merge(a, b, Fr::one())
    }
    fn sub(&self, a: &Lc, b: &Lc) -> Lc {
        Lc::merge(a, b, -Fr::one())
    }
    fn scale(&self, a: &Lc, c: Fr) -> Lc {
        if c.is_zero() { Lc::default() } else { Lc(a.0.iter().map(|(v, x)| (*v, *x * c)).collect()) }
    }
    fn input(&mut self, _value: Fr) -> Lc {
        assert_eq!(self.r1cs.num_witness, 0, "public inputs must come before any witness");
        self.r1cs.num_inputs += 1;
        self.next_var += 1;
        Lc::var(self.next_var - 1)
    }
    fn witness(&mut self, _value: Fr) -> Lc {
        self.r1cs.num_witness += 1;
        self.next_var += 1;
        Lc::var(self.next_var - 1)
    }
    fn mul(&mut self, a: &Lc, b: &Lc) -> Lc {
        let out = self.witness(Fr::zero());
        self.enforce(a, b, &out);
        out
    }
    fn enforce(&mut self, a: &Lc, b: &Lc, c: &Lc) {
        self.r1cs.a.push(Self::row(a));
        self.r1cs.b.push(Self::row(b));
        self.r1cs.c.push(Self::row(c));
    }
    fn value(&self, _a: &Lc) -> Fr {
        Fr::zero()
    }
}

/// Computes the assignment (see the module documentation).
#[derive(Debug)]
pub struct WitnessBuilder {
    assignment: Vec<Fr>,
    num_inputs: usize,
    constraints: usize,
    first_unsatisfied: Option<usize>,
}

impl Default for WitnessBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WitnessBuilder {
    /// An empty assignment (the constant one only).
    pub fn new() -> Self {
        WitnessBuilder { assignment: vec![Fr::one()], num_inputs: 0, constraints: 0, first_unsatisfied: None }
    }

    /// With room for `variables` values.
    pub fn with_capacity(variables: usize) -> Self {
        let mut assignment = Vec::with_capacity(variables);
        assignment.push(Fr::one());
        WitnessBuilder { assignment, num_inputs: 0, constraints: 0, first_unsatisfied: None }
    }

    /// The full assignment (one, inputs, witness), or the index of the first constraint the
    /// values do not satisfy.
    pub fn finish(self) -> Result<Vec<Fr>, usize> {
        match self.first_unsatisfied {
            None => Ok(self.assignment),
            Some(i) => Err(i),
        }
    }

    /// Public inputs allocated so far.
    pub fn num_inputs(&self) -> usize {
        self.num_inputs
    }
}

impl Cs for WitnessBuilder {
    type V = Fr;

    fn constant(&self, c: Fr) -> Fr {
        c
    }
    fn add(&self, a: &Fr, b: &Fr) -> Fr {
        *a + b
    }
    fn sub(&self, a: &Fr, b: &Fr) -> Fr {
        *a - b
    }
    fn scale(&self, a: &Fr, c: Fr) -> Fr {
        *a * c
    }
    fn input(&mut self, value: Fr) -> Fr {
        assert_eq!(self.assignment.len(), 1 + self.num_inputs, "public inputs must come before any witness");
        self.num_inputs += 1;
        self.assignment.push(value);
        value
    }
    fn witness(&mut self, value: Fr) -> Fr {
        self.assignment.push(value);
        value
    }
    fn mul(&mut self, a: &Fr, b: &Fr) -> Fr {
        let v = *a * b;
        self.assignment.push(v);
        self.constraints += 1;
        v
    }
    fn enforce(&mut self, a: &Fr, b: &Fr, c: &Fr) {
        if self.first_unsatisfied.is_none() && *a * b != *c {
            self.first_unsatisfied = Some(self.constraints);
        }
        self.constraints += 1;
    }
    fn value(&self, a: &Fr) -> Fr {
        *a
    }
}
