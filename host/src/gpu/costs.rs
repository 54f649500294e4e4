//! What a CPU run of each kernel costs, for the GPU executor's failover decision.

use std::time::Duration;

use crate::kernels::{KernelRequest, work_units};

/// Recent CPU run times per kernel, as nanoseconds per unit of work
/// ([`work_units`]), for the failover decision: a request
/// may wait for the worker only while what is left of its deadline still covers the p90 of
/// its kernel's CPU runs, scaled to its size (plus a quarter and [`COST_MARGIN`]).
#[derive(Debug, Default)]
pub(super) struct CpuCosts {
    /// Indexed by [`kernel_index`].
    kernels: [std::sync::Mutex<CostRing>; 2],
}

/// The last [`COST_SAMPLES`] costs of one kernel, oldest overwritten first.
#[derive(Debug, Default)]
struct CostRing {
    ns_per_unit: [f64; COST_SAMPLES],
    len: usize,
    next: usize,
}

const COST_SAMPLES: usize = 32;

/// Added to the scaled p90 (with a quarter of it) for the hop to the blocking pool and the
/// scheduling noise a p90 of small runs does not show.
const COST_MARGIN: Duration = Duration::from_millis(2);

fn kernel_index(request: &KernelRequest) -> usize {
    match request {
        // A job's chunk costs what as many iterations of PageRank do.
        KernelRequest::PageRank(_) | KernelRequest::PageRankSteps(_) => 0,
        KernelRequest::MatMul(_) => 1,
    }
}

impl CpuCosts {
    fn ring(&self, request: &KernelRequest) -> Option<std::sync::MutexGuard<'_, CostRing>> {
        self.kernels.get(kernel_index(request)).map(|ring| {
            ring.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// Notes a successful CPU run of `request` that took `elapsed`.
    pub(super) fn record(&self, request: &KernelRequest, elapsed: Duration) {
        let units = work_units(request).max(1);
        #[allow(clippy::cast_precision_loss)] // a cost estimate; 2^52 units is far off
        let cost = elapsed.as_nanos() as f64 / units as f64;
        if let Some(mut ring) = self.ring(request) {
            let at = ring.next;
            if let Some(slot) = ring.ns_per_unit.get_mut(at) {
                *slot = cost;
            }
            ring.next = (at + 1) % COST_SAMPLES;
            ring.len = (ring.len + 1).min(COST_SAMPLES);
        }
    }

    /// The p90 of the kernel's recent CPU runs scaled to `request`'s size; `None` before the
    /// kernel's first CPU run.
    pub(super) fn estimate(&self, request: &KernelRequest) -> Option<Duration> {
        let ring = self.ring(request)?;
        let mut costs: Vec<f64> = ring.ns_per_unit.get(..ring.len)?.to_vec();
        drop(ring);
        if costs.is_empty() {
            return None;
        }
        costs.sort_by(f64::total_cmp);
        // The nearest-rank p90: the smallest cost at or above 90 % of the samples.
        let rank = (costs.len() * 9).div_ceil(10).max(1) - 1;
        let p90 = costs.get(rank).copied()?;
        #[allow(clippy::cast_precision_loss)]
        let units = work_units(request).max(1) as f64;
        let run = Duration::from_secs_f64((p90 * units / 1e9).clamp(0.0, 3.6e6));
        Some(run + run / 4 + COST_MARGIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pagerank(nodes: u32, edges: usize) -> KernelRequest {
        KernelRequest::PageRank(crate::kernels::PageRankInput {
            num_nodes: nodes,
            edges: vec![[0, 1]; edges],
            damping: 0.85,
            max_iterations: 10,
            tolerance: 1e-9,
        })
    }

    #[test]
    fn cpu_cost_is_the_p90_of_recent_runs_scaled_to_the_request() {
        let costs = CpuCosts::default();
        let small = pagerank(90, 10); // (90 + 10) x 10 = 1,000 units
        assert_eq!(costs.estimate(&small), None, "no history, no estimate");
        // 1 ns per unit nine times, 10 ns once: the nearest-rank p90 of ten is the ninth.
        for _ in 0..9 {
            costs.record(&small, Duration::from_micros(1));
        }
        costs.record(&small, Duration::from_micros(10));
        let run = Duration::from_micros(1);
        assert_eq!(costs.estimate(&small), Some(run + run / 4 + COST_MARGIN));
        // Ten times the work, ten times the run.
        let large = pagerank(900, 100);
        let run = Duration::from_micros(10);
        assert_eq!(costs.estimate(&large), Some(run + run / 4 + COST_MARGIN));
        // Matmul keeps its own history.
        let matmul = KernelRequest::MatMul(crate::kernels::MatMulInput {
            n: 1,
            a: vec![1.0],
            b: vec![1.0],
        });
        assert_eq!(costs.estimate(&matmul), None);
        // Only the last 32 runs count.
        for _ in 0..COST_SAMPLES {
            costs.record(&small, Duration::from_micros(3));
        }
        let run = Duration::from_micros(3);
        assert_eq!(costs.estimate(&small), Some(run + run / 4 + COST_MARGIN));
    }
}
