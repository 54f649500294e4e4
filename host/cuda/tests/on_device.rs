//! The kernels on a real GPU, each answer checked against a CPU reference on the same input
//! (as CuPy's tests check theirs against NumPy). Where `cuInit` finds no device (the stub
//! libcuda of scripts/cuda-stub.sh, a machine without a GPU) every test says so and passes.
//!
//! The PageRank reference is the CPU kernel's loop (host/src/kernels/pagerank.rs) on the same
//! CSR arrays: the device must stop at the same iteration and give the same ranks, up to the
//! order in which its atomics add the dangling rank and the L1 change.
//!
//! The fault kernels poison the context of the process that runs them, so they live in their
//! own test binary (tests/on_device_fault.rs).

#![cfg(feature = "cust")]
// Tests fail loudly and index what they built.
#![allow(clippy::panic, clippy::indexing_slicing, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rustkernel_cuda::{
    CsrView, CudaDevice, InitError, PAGERANK_CHECK_EVERY, PageRankParams, PtxSource,
};

fn device() -> Option<CudaDevice> {
    match CudaDevice::init(
        PtxSource::Embedded,
        Instant::now() + Duration::from_secs(60),
    ) {
        Ok(device) => Some(device),
        Err(InitError::NoDevice) => {
            eprintln!("skipped: no CUDA device");
            None
        }
        Err(e) => panic!("CUDA start-up failed: {e}"),
    }
}

/// A small deterministic generator (xorshift64*), so the inputs need no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u32) -> u32 {
        u32::try_from(self.next() % u64::from(n)).unwrap()
    }

    fn unit(&mut self) -> f64 {
        // 53 random bits in [0, 1), then in [-1, 1).
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

struct Csr {
    offsets: Vec<u32>,
    sources: Vec<u32>,
    inv_out_degree: Vec<f64>,
}

impl Csr {
    /// CSR by destination, as rustkernel_host::kernels::Csr builds it.
    fn new(n: u32, edges: &[[u32; 2]]) -> Self {
        let n = n as usize;
        let mut out_degree = vec![0u32; n];
        let mut offsets = vec![0u32; n + 1];
        for &[from, to] in edges {
            out_degree[from as usize] += 1;
            offsets[to as usize + 1] += 1;
        }
        for i in 1..=n {
            offsets[i] += offsets[i - 1];
        }
        let mut next = offsets.clone();
        let mut sources = vec![0u32; edges.len()];
        for &[from, to] in edges {
            sources[next[to as usize] as usize] = from;
            next[to as usize] += 1;
        }
        let inv_out_degree = out_degree
            .iter()
            .map(|&d| if d == 0 { 0.0 } else { 1.0 / f64::from(d) })
            .collect();
        Self {
            offsets,
            sources,
            inv_out_degree,
        }
    }

    fn view(&self) -> CsrView<'_> {
        CsrView {
            offsets: &self.offsets,
            sources: &self.sources,
            inv_out_degree: &self.inv_out_degree,
        }
    }

    /// The CPU kernel's loop; also returns each iteration's L1 change.
    fn pagerank(&self, params: PageRankParams) -> (Vec<f64>, u32, Vec<f64>) {
        let n = self.inv_out_degree.len();
        let n_f = n as f64;
        let d = params.damping;
        let mut ranks = vec![1.0 / n_f; n];
        let mut next = vec![0.0; n];
        let mut contrib = vec![0.0; n];
        let mut iterations = 0;
        let mut deltas = Vec::new();
        while iterations < params.max_iterations {
            iterations += 1;
            let mut dangling = 0.0;
            for u in 0..n {
                contrib[u] = ranks[u] * self.inv_out_degree[u];
                if self.inv_out_degree[u] == 0.0 {
                    dangling += ranks[u];
                }
            }
            let base = (1.0 - d) / n_f + d * dangling / n_f;
            let mut delta = 0.0;
            for v in 0..n {
                let (start, end) = (self.offsets[v] as usize, self.offsets[v + 1] as usize);
                let sum: f64 = self.sources[start..end]
                    .iter()
                    .map(|&u| contrib[u as usize])
                    .sum();
                next[v] = base + d * sum;
                delta += (next[v] - ranks[v]).abs();
            }
            std::mem::swap(&mut ranks, &mut next);
            deltas.push(delta);
            if delta < params.tolerance {
                break;
            }
        }
        (ranks, iterations, deltas)
    }
}

fn params(max_iterations: u32, tolerance: f64) -> PageRankParams {
    PageRankParams {
        damping: 0.85,
        max_iterations,
        tolerance,
    }
}

fn assert_close(gpu: &[f64], cpu: &[f64], what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}");
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let scale = c.abs().max(1e-300);
        assert!(
            (g - c).abs() <= 1e-9 * scale.max(1.0) || (g - c).abs() / scale <= 1e-6,
            "{what}: [{i}] gpu {g} cpu {c}"
        );
    }
}

fn random_graph(rng: &mut Rng, n: u32, edges: usize) -> Vec<[u32; 2]> {
    (0..edges).map(|_| [rng.below(n), rng.below(n)]).collect()
}

#[test]
fn pagerank_matches_the_cpu_iteration_for_iteration() {
    let Some(device) = device() else { return };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let far = Instant::now() + Duration::from_secs(120);
    let cycle: Vec<[u32; 2]> = (0..5).map(|i| [i, (i + 1) % 5]).collect();
    let star: Vec<[u32; 2]> = (1..50).map(|i| [i, 0]).collect();
    let graphs: Vec<(&str, u32, Vec<[u32; 2]>)> = vec![
        ("one node", 1, vec![]),
        ("no edges", 7, vec![]),
        ("a cycle (converges at once)", 5, cycle),
        ("a star (dangling hub)", 50, star),
        ("random 300", 300, random_graph(&mut rng, 300, 1500)),
        ("random 5000", 5000, random_graph(&mut rng, 5000, 40_000)),
        (
            "random 70000",
            70_000,
            random_graph(&mut rng, 70_000, 300_000),
        ),
    ];
    // Caps on, just past and far past a batch boundary; tolerance 0 runs every iteration.
    let k = PAGERANK_CHECK_EVERY;
    let cases = [
        params(100, 1e-10),
        params(100, 1e-6),
        params(k, 0.0),
        params(k + 1, 0.0),
        params(3 * k - 1, 0.0),
        params(1, 1e-10),
        params(10_000, 1e-13),
    ];
    for (name, n, edges) in &graphs {
        let csr = Csr::new(*n, edges);
        for p in cases {
            let what = format!("{name}, {p:?}");
            let (mut cpu, cpu_iterations, deltas) = csr.pagerank(p);
            let (gpu, gpu_iterations) = device
                .pagerank(csr.view(), p, far)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            if gpu_iterations != cpu_iterations {
                // Allowed only where the CPU's change at the first of the two iterations is
                // within rounding (1%) of the tolerance: the device adds in another order.
                let first = gpu_iterations.min(cpu_iterations);
                let delta = deltas[first as usize - 1];
                assert!(
                    gpu_iterations.abs_diff(cpu_iterations) == 1
                        && (delta - p.tolerance).abs() <= 0.01 * p.tolerance,
                    "{what}: gpu {gpu_iterations} iterations, cpu {cpu_iterations} (changes \
                     {deltas:?})"
                );
                let exact = PageRankParams {
                    max_iterations: gpu_iterations,
                    tolerance: 0.0,
                    ..p
                };
                cpu = csr.pagerank(exact).0;
            }
            assert_close(&gpu, &cpu, &what);
            let sum: f64 = gpu.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "{what}: sum {sum}");
        }
    }
}

#[test]
fn pagerank_stops_at_its_deadline_between_batches() {
    let Some(device) = device() else { return };
    let csr = Csr::new(3, &[[0, 1], [1, 2]]);
    let e = device
        .pagerank(csr.view(), params(100, 0.0), Instant::now())
        .expect_err("deadline passed");
    assert!(e.is_deadline(), "{e}");
}

#[test]
fn matmul_matches_the_cpu() {
    let Some(device) = device() else { return };
    let mut rng = Rng(42);
    for n in [1u32, 2, 15, 16, 17, 64, 100, 257] {
        let len = (n * n) as usize;
        let a: Vec<f64> = (0..len).map(|_| rng.unit()).collect();
        let b: Vec<f64> = (0..len).map(|_| rng.unit()).collect();
        let c = device
            .matmul(n, &a, &b)
            .unwrap_or_else(|e| panic!("{n}: {e}"));
        let n = n as usize;
        for i in 0..n {
            for j in 0..n {
                let want: f64 = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
                let got = c[i * n + j];
                assert!(
                    (got - want).abs() <= 1e-12 * n as f64,
                    "n {n} [{i}][{j}]: gpu {got} cpu {want}"
                );
            }
        }
    }
}
