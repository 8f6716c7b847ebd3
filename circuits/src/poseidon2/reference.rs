//! A plain, slow Poseidon2 written straight from the definition with ark-ff operators and explicit
//! t×t matrices: the test oracle for the optimised permutation.

use super::{FULL_ROUNDS, Poseidon2Params};
use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, Field, One};

/// M4 = `[[5,7,1,3],[4,6,1,1],[1,3,5,7],[1,1,4,6]]`.
const M4: [[u64; 4]; 4] = [[5, 7, 1, 3], [4, 6, 1, 1], [1, 3, 5, 7], [1, 1, 4, 6]];

/// The external matrix M_E as a dense matrix.
fn external_matrix<const T: usize>() -> [[Fr; T]; T] {
    std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            if T == 3 {
                // circ(2, 1, 1)
                Fr::from(if i == j { 2u64 } else { 1 })
            } else {
                let m = Fr::from(M4[i % 4][j % 4]);
                if i / 4 == j / 4 && T > 4 { m.double() } else { m }
            }
        })
    })
}

/// The internal matrix M_I = J + diag(d) as a dense matrix.
fn internal_matrix<const T: usize>(params: &Poseidon2Params<T>) -> [[Fr; T]; T] {
    std::array::from_fn(|i| {
        std::array::from_fn(|j| if i == j { Fr::one() + params.internal_diag_m1[i] } else { Fr::one() })
    })
}

fn apply<const T: usize>(m: &[[Fr; T]; T], x: &[Fr; T]) -> [Fr; T] {
    std::array::from_fn(|i| m[i].iter().zip(x).map(|(a, b)| *a * b).sum())
}

/// The permutation of `x`, computed the slow and obvious way.
pub(super) fn permutation<const T: usize>(params: &Poseidon2Params<T>, mut x: [Fr; T]) -> [Fr; T] {
    let me = external_matrix::<T>();
    let mi = internal_matrix(params);
    let full = |x: &mut [Fr; T], rc: &[Fr; T]| {
        for (v, c) in x.iter_mut().zip(rc) {
            *v = (*v + c).pow([5u64]);
        }
        *x = apply(&me, x);
    };
    x = apply(&me, &x);
    for rc in &params.external_rc[..FULL_ROUNDS / 2] {
        full(&mut x, rc);
    }
    for c in params.internal_rc {
        x[0] = (x[0] + c).pow([5u64]);
        x = apply(&mi, &x);
    }
    for rc in &params.external_rc[FULL_ROUNDS / 2..] {
        full(&mut x, rc);
    }
    x
}
