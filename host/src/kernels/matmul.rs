//! Dense square matrix product `C = A * B` in `f64`, row-major.
//!
//! The loop is the cache-friendly `i-k-j` order, blocked: a tile of `B` (`K_BLOCK` rows by
//! `J_BLOCK` columns, 256 KiB) is reused by a block of `I_BLOCK` rows of `A` while it is in the
//! cache, and the innermost loop walks a row of `B` and a row of `C` contiguously, which the
//! compiler vectorises.

use serde::{Deserialize, Serialize};

use super::KernelError;

/// The largest `n` a request may use (an `8192 x 8192` matrix is 512 MiB of `f64`).
pub const MAX_MATMUL_N: u32 = 8192;

const I_BLOCK: usize = 32;
const K_BLOCK: usize = 128;
const J_BLOCK: usize = 256;

/// The input of [`MATMUL`](super::MATMUL): two `n x n` matrices, row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatMulInput {
    /// The side of both matrices, `1..=`[`MAX_MATMUL_N`].
    pub n: u32,
    /// `A`, `n * n` finite values, row-major.
    pub a: Vec<f64>,
    /// `B`, `n * n` finite values, row-major.
    pub b: Vec<f64>,
}

/// The result of [`MATMUL`](super::MATMUL).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatMulOutput {
    /// The side of `C`.
    pub n: u32,
    /// `C = A * B`, `n * n` values, row-major.
    pub c: Vec<f64>,
}

pub(super) fn validate(input: &MatMulInput) -> Result<(), KernelError> {
    let invalid = |why: String| Err(KernelError::InvalidInput(why));
    if input.n == 0 {
        return invalid("n must be at least 1".into());
    }
    if input.n > MAX_MATMUL_N {
        return invalid(format!("n {} is over the limit of {MAX_MATMUL_N}", input.n));
    }
    let n = input.n as usize;
    let want = n * n;
    for (name, m) in [("a", &input.a), ("b", &input.b)] {
        if m.len() != want {
            return invalid(format!(
                "`{name}` has {} values, an {n} x {n} matrix needs {want}",
                m.len()
            ));
        }
        if let Some(i) = m.iter().position(|v| !v.is_finite()) {
            return invalid(format!("`{name}`[{i}] is not a finite number"));
        }
    }
    Ok(())
}

pub(super) fn run(
    input: &MatMulInput,
    cancelled: &dyn Fn() -> bool,
) -> Result<MatMulOutput, KernelError> {
    let n = input.n as usize;
    let mut c = vec![0.0f64; n * n];
    for (a_rows, c_rows) in input.a.chunks(I_BLOCK * n).zip(c.chunks_mut(I_BLOCK * n)) {
        if cancelled() {
            return Err(KernelError::Cancelled);
        }
        for (k_blk, b_rows) in input.b.chunks(K_BLOCK * n).enumerate() {
            let k0 = k_blk * K_BLOCK;
            for j0 in (0..n).step_by(J_BLOCK) {
                let j1 = (j0 + J_BLOCK).min(n);
                for (a_row, c_row) in a_rows.chunks_exact(n).zip(c_rows.chunks_exact_mut(n)) {
                    let Some(c_tile) = c_row.get_mut(j0..j1) else {
                        continue;
                    };
                    let a_ks = a_row.get(k0..).unwrap_or_default();
                    for (&a_ik, b_row) in a_ks.iter().zip(b_rows.chunks_exact(n)) {
                        let Some(b_tile) = b_row.get(j0..j1) else {
                            continue;
                        };
                        for (c_ij, &b_kj) in c_tile.iter_mut().zip(b_tile) {
                            *c_ij += a_ik * b_kj;
                        }
                    }
                }
            }
        }
    }
    Ok(MatMulOutput { n: input.n, c })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)] // tests index what they built and fail loudly
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn mm(n: u32, a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
        let input = MatMulInput { n, a, b };
        validate(&input).expect("valid");
        run(&input, &|| false).expect("runs").c
    }

    fn naive(n: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                c[i * n + j] = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn two_by_two_by_hand() {
        // [1 2; 3 4] * [5 6; 7 8] = [19 22; 43 50]
        assert_eq!(
            mm(2, vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]),
            vec![19.0, 22.0, 43.0, 50.0]
        );
    }

    #[test]
    fn identity_leaves_a_matrix_alone() {
        let n = 300; // crosses every block size
        let a: Vec<f64> = (0..n * n).map(|i| f64::from(i % 97) - 48.0).collect();
        let mut id = vec![0.0; n as usize * n as usize];
        for i in 0..n as usize {
            id[i * n as usize + i] = 1.0;
        }
        assert_eq!(mm(n, a.clone(), id.clone()), a);
        assert_eq!(mm(n, id, a.clone()), a);
    }

    #[test]
    fn blocked_matches_naive_across_block_edges() {
        for n in [1usize, 31, 33, 129, 257] {
            let a: Vec<f64> = (0..n * n).map(|i| ((i * 7 % 13) as f64) - 6.0).collect();
            let b: Vec<f64> = (0..n * n).map(|i| ((i * 5 % 11) as f64) * 0.5).collect();
            let n32 = u32::try_from(n).expect("small");
            // Small integers and halves: every sum is exact, whatever the order.
            assert_eq!(mm(n32, a.clone(), b.clone()), naive(n, &a, &b), "n = {n}");
        }
    }

    #[test]
    fn cancellation_stops_between_row_blocks() {
        let n = 100u32;
        let input = MatMulInput {
            n,
            a: vec![1.0; 10_000],
            b: vec![1.0; 10_000],
        };
        let calls = std::cell::Cell::new(0);
        let out = run(&input, &|| {
            calls.set(calls.get() + 1);
            calls.get() == 2
        });
        assert_eq!(out, Err(KernelError::Cancelled));
    }

    #[test]
    fn bad_inputs_are_invalid_with_reasons() {
        let cases = [
            (
                MatMulInput {
                    n: 0,
                    a: vec![],
                    b: vec![],
                },
                "at least 1",
            ),
            (
                MatMulInput {
                    n: 2,
                    a: vec![1.0; 3],
                    b: vec![1.0; 4],
                },
                "`a` has 3 values",
            ),
            (
                MatMulInput {
                    n: 1,
                    a: vec![1.0],
                    b: vec![f64::INFINITY],
                },
                "`b`[0]",
            ),
            (
                MatMulInput {
                    n: MAX_MATMUL_N + 1,
                    a: vec![],
                    b: vec![],
                },
                "over the limit",
            ),
        ];
        for (input, needle) in cases {
            match validate(&input) {
                Err(KernelError::InvalidInput(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    proptest! {
        #[test]
        fn matches_the_naive_product(
            n in 1usize..24,
            seed in proptest::collection::vec(-8i8..8, 1..64),
        ) {
            let a: Vec<f64> = (0..n * n).map(|i| f64::from(seed[i % seed.len()])).collect();
            let b: Vec<f64> = (0..n * n).map(|i| f64::from(seed[(i * 3 + 1) % seed.len()])).collect();
            let n32 = u32::try_from(n).expect("small");
            prop_assert_eq!(mm(n32, a.clone(), b.clone()), naive(n, &a, &b));
        }
    }
}
