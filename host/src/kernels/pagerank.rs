//! PageRank by power iteration over a CSR graph built from an edge list.
//!
//! Each iteration computes, for every node `v`,
//! `r'(v) = (1 - d) / N + d * (sum over edges u->v of r(u) / outdeg(u) + D / N)`, where `D` is
//! the rank held by dangling nodes (no out-edges), which is spread uniformly. Ranks start
//! uniform and sum to 1 after every iteration. The run stops when the L1 distance between two
//! iterations drops below the tolerance, or after `max_iterations`. Parallel edges count once
//! each; self-loops are ordinary edges.

use serde::{Deserialize, Serialize};

use super::KernelError;

/// The most nodes a graph may have.
pub const MAX_NODES: u32 = 10_000_000;
/// The most edges a graph may have.
pub const MAX_EDGES: usize = 50_000_000;
/// The most iterations a request may ask for.
pub const MAX_ITERATIONS: u32 = 10_000;

/// The default damping factor, 0.85 (Brin and Page).
#[must_use]
pub fn default_damping() -> f64 {
    0.85
}

/// The default iteration cap, 100.
#[must_use]
pub fn default_max_iterations() -> u32 {
    100
}

/// The default L1 tolerance, `1e-10`.
#[must_use]
pub fn default_tolerance() -> f64 {
    1e-10
}

/// The input of [`PAGERANK`](super::PAGERANK): a directed graph as an edge list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRankInput {
    /// Nodes are `0..num_nodes`; at least 1, at most [`MAX_NODES`].
    pub num_nodes: u32,
    /// Directed edges `[from, to]`; at most [`MAX_EDGES`].
    pub edges: Vec<[u32; 2]>,
    /// The damping factor `d`, finite, in `[0, 1]`; default 0.85.
    #[serde(default = "default_damping")]
    pub damping: f64,
    /// The iteration cap, `1..=`[`MAX_ITERATIONS`]; default 100.
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u32,
    /// Stop once the L1 change of an iteration is below this; finite, `>= 0`; default `1e-10`.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

/// The result of [`PAGERANK`](super::PAGERANK).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageRankOutput {
    /// The rank of each node, indexed by node id; they sum to 1.
    pub ranks: Vec<f64>,
    /// Iterations run (equal to `max_iterations` when the tolerance was not reached).
    pub iterations: u32,
}

pub(super) fn validate(input: &PageRankInput) -> Result<(), KernelError> {
    let invalid = |why: String| Err(KernelError::InvalidInput(why));
    if input.num_nodes == 0 {
        return invalid("the graph is empty (num_nodes is 0)".into());
    }
    if input.num_nodes > MAX_NODES {
        return invalid(format!(
            "num_nodes {} is over the limit of {MAX_NODES}",
            input.num_nodes
        ));
    }
    if input.edges.len() > MAX_EDGES {
        return invalid(format!(
            "{} edges is over the limit of {MAX_EDGES}",
            input.edges.len()
        ));
    }
    if !input.damping.is_finite() || !(0.0..=1.0).contains(&input.damping) {
        return invalid(format!(
            "damping must be a finite number in [0, 1], not {}",
            input.damping
        ));
    }
    if !input.tolerance.is_finite() || input.tolerance < 0.0 {
        return invalid(format!(
            "tolerance must be a finite number >= 0, not {}",
            input.tolerance
        ));
    }
    if input.max_iterations == 0 || input.max_iterations > MAX_ITERATIONS {
        return invalid(format!(
            "max_iterations must be in 1..={MAX_ITERATIONS}, not {}",
            input.max_iterations
        ));
    }
    if let Some((i, [from, to])) = input
        .edges
        .iter()
        .enumerate()
        .find(|(_, [from, to])| *from >= input.num_nodes || *to >= input.num_nodes)
    {
        return invalid(format!(
            "edge {i} ({from} -> {to}) names a node out of range (num_nodes is {})",
            input.num_nodes
        ));
    }
    Ok(())
}

/// The graph in compressed sparse row form, by destination: the sources of the edges into
/// node `v` are `sources[offsets[v]..offsets[v + 1]]`. Shared with the GPU backend, which
/// uploads the same arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr {
    /// `num_nodes + 1` offsets into `sources`.
    pub offsets: Vec<u32>,
    /// The source node of each edge, grouped by destination.
    pub sources: Vec<u32>,
    /// `1 / outdeg(u)`, or 0 for a dangling node.
    pub inv_out_degree: Vec<f64>,
}

impl Csr {
    /// Builds the CSR form of a validated input (ids in range, sizes within bounds).
    ///
    /// # Errors
    /// [`KernelError::InvalidInput`] if an id is out of range after all (never for a
    /// validated input).
    pub fn build(input: &PageRankInput) -> Result<Self, KernelError> {
        let n = input.num_nodes as usize;
        let out_of_range = || KernelError::InvalidInput("edge names a node out of range".into());
        let mut out_degree = vec![0u32; n];
        let mut offsets = vec![0u32; n + 1];
        for &[from, to] in &input.edges {
            let d = out_degree.get_mut(from as usize).ok_or_else(out_of_range)?;
            *d = d.saturating_add(1);
            let o = offsets.get_mut(to as usize + 1).ok_or_else(out_of_range)?;
            *o = o.saturating_add(1);
        }
        let mut running = 0u32;
        for o in &mut offsets {
            running = running.saturating_add(*o);
            *o = running;
        }
        let mut next = offsets.clone();
        let mut sources = vec![0u32; input.edges.len()];
        for &[from, to] in &input.edges {
            let slot = next.get_mut(to as usize).ok_or_else(out_of_range)?;
            *sources.get_mut(*slot as usize).ok_or_else(out_of_range)? = from;
            *slot = slot.saturating_add(1);
        }
        let inv_out_degree = out_degree
            .iter()
            .map(|&d| if d == 0 { 0.0 } else { 1.0 / f64::from(d) })
            .collect();
        Ok(Self {
            offsets,
            sources,
            inv_out_degree,
        })
    }
}

pub(super) fn run(
    input: &PageRankInput,
    cancelled: &dyn Fn() -> bool,
) -> Result<PageRankOutput, KernelError> {
    let csr = Csr::build(input)?;
    let n = input.num_nodes as usize;
    let mut ranks = initial_ranks(input.num_nodes);
    let mut next = vec![0.0f64; n];
    let mut contrib = vec![0.0f64; n];
    let mut iterations = 0u32;
    while iterations < input.max_iterations {
        if cancelled() {
            return Err(KernelError::Cancelled);
        }
        iterations += 1;
        let delta = step(&csr, input.damping, &mut ranks, &mut next, &mut contrib);
        if delta < input.tolerance {
            break;
        }
    }
    Ok(PageRankOutput { ranks, iterations })
}

/// The ranks before the first iteration: uniform.
pub(super) fn initial_ranks(num_nodes: u32) -> Vec<f64> {
    vec![1.0 / f64::from(num_nodes); num_nodes as usize]
}

/// One power iteration: `ranks` becomes the next ranks (`next` and `contrib` are scratch of
/// the same length); returns the L1 distance between the two. The uninterrupted [`run`] and
/// a resumed run ([`PageRankRun`](super::PageRankRun)) both iterate through here, so they
/// compute the same bits.
pub(super) fn step(
    csr: &Csr,
    d: f64,
    ranks: &mut Vec<f64>,
    next: &mut Vec<f64>,
    contrib: &mut [f64],
) -> f64 {
    // `ranks.len()` is `num_nodes`, at most MAX_NODES.
    let n_f = f64::from(u32::try_from(ranks.len()).unwrap_or(MAX_NODES));
    let mut dangling = 0.0f64;
    for ((c, &r), &inv) in contrib
        .iter_mut()
        .zip(ranks.iter())
        .zip(&csr.inv_out_degree)
    {
        *c = r * inv;
        if inv == 0.0 {
            dangling += r;
        }
    }
    let base = (1.0 - d) / n_f + d * dangling / n_f;
    let mut delta = 0.0f64;
    for ((out, &old), bounds) in next
        .iter_mut()
        .zip(ranks.iter())
        .zip(csr.offsets.windows(2))
    {
        let (start, end) = match bounds {
            [s, e] => (*s as usize, *e as usize),
            _ => (0, 0),
        };
        let sum: f64 = csr
            .sources
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|&u| contrib.get(u as usize).copied().unwrap_or(0.0))
            .sum();
        *out = base + d * sum;
        delta += (*out - old).abs();
    }
    std::mem::swap(ranks, next);
    delta
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)] // tests index what they built and fail loudly
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn input(num_nodes: u32, edges: &[[u32; 2]]) -> PageRankInput {
        PageRankInput {
            num_nodes,
            edges: edges.to_vec(),
            damping: default_damping(),
            max_iterations: default_max_iterations(),
            tolerance: default_tolerance(),
        }
    }

    fn ranks(input: &PageRankInput) -> PageRankOutput {
        validate(input).expect("valid");
        run(input, &|| false).expect("runs")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_cycle_gives_uniform_ranks_at_once() {
        let out = ranks(&input(3, &[[0, 1], [1, 2], [2, 0]]));
        assert!(
            out.ranks.iter().all(|&r| close(r, 1.0 / 3.0)),
            "{:?}",
            out.ranks
        );
        // Uniform is the fixed point: the first iteration changes nothing.
        assert_eq!(out.iterations, 1);
    }

    #[test]
    fn a_star_matches_the_closed_form() {
        // Leaves 1..=4 point to the hub 0; the hub is dangling.
        // Hub h, leaf l: l = (1-d)/5 + d*h/5 and h = (1-d)/5 + d*(4l + h/5).
        let inp = input(5, &[[1, 0], [2, 0], [3, 0], [4, 0]]);
        let out = ranks(&inp);
        let d = 0.85;
        let (h, l) = (out.ranks[0], out.ranks[1]);
        assert!(out.ranks[1..].iter().all(|&r| close(r, l)));
        assert!(close(l, (1.0 - d) / 5.0 + d * h / 5.0));
        assert!(close(h, (1.0 - d) / 5.0 + d * (4.0 * l + h / 5.0)));
        assert!(h > l);
        // Solving the two equations: h = (1 + 4d) / (5 + 4d) for d = 0.85 (with 4l + h = 1).
        assert!(close(h, (1.0 + 4.0 * d) / (5.0 + 4.0 * d)), "hub {h}");
    }

    #[test]
    fn two_nodes_one_edge_by_hand() {
        // 0 -> 1, node 1 dangling. r1 = (1-d)/2 + d*(r0 + r1/2), r0 = (1-d)/2 + d*r1/2.
        let out = ranks(&input(2, &[[0, 1]]));
        let d = 0.85;
        let (a, b) = (out.ranks[0], out.ranks[1]);
        assert!(close(a, (1.0 - d) / 2.0 + d * b / 2.0));
        assert!(close(b, (1.0 - d) / 2.0 + d * (a + b / 2.0)));
        // Exact: a = 1/(2+d) = 0.350877..., b = (1+d)/(2+d).
        assert!(close(a, 1.0 / (2.0 + d)), "{a}");
    }

    #[test]
    fn a_single_node_and_no_edges() {
        let out = ranks(&input(1, &[]));
        assert_eq!(out.ranks, vec![1.0]);
        let out = ranks(&input(4, &[]));
        assert!(out.ranks.iter().all(|&r| close(r, 0.25)));
    }

    #[test]
    fn stops_at_max_iterations() {
        let mut inp = input(5, &[[1, 0], [2, 0], [3, 0], [4, 0]]);
        inp.max_iterations = 2;
        inp.tolerance = 0.0;
        assert_eq!(ranks(&inp).iterations, 2);
    }

    #[test]
    fn cancellation_is_polled_between_iterations() {
        let calls = std::cell::Cell::new(0);
        let inp = input(5, &[[1, 0], [2, 0], [3, 0], [4, 0]]);
        let out = run(&inp, &|| {
            calls.set(calls.get() + 1);
            calls.get() > 3
        });
        assert_eq!(out, Err(KernelError::Cancelled));
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn bad_inputs_are_invalid_with_reasons() {
        let base = input(3, &[[0, 1]]);
        let cases: [(PageRankInput, &str); 7] = [
            (input(0, &[]), "empty"),
            (input(3, &[[0, 3]]), "edge 0 (0 -> 3)"),
            (
                PageRankInput {
                    damping: f64::NAN,
                    ..base.clone()
                },
                "damping",
            ),
            (
                PageRankInput {
                    damping: 1.5,
                    ..base.clone()
                },
                "damping",
            ),
            (
                PageRankInput {
                    tolerance: -1.0,
                    ..base.clone()
                },
                "tolerance",
            ),
            (
                PageRankInput {
                    max_iterations: 0,
                    ..base.clone()
                },
                "max_iterations",
            ),
            (input(MAX_NODES + 1, &[]), "over the limit"),
        ];
        for (inp, needle) in cases {
            match validate(&inp) {
                Err(KernelError::InvalidInput(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("{inp:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn csr_groups_sources_by_destination() {
        let csr = Csr::build(&input(3, &[[0, 2], [1, 2], [2, 0], [0, 2]])).expect("builds");
        assert_eq!(csr.offsets, vec![0, 1, 1, 4]);
        assert_eq!(csr.sources, vec![2, 0, 1, 0]);
        assert_eq!(csr.inv_out_degree, vec![0.5, 1.0, 1.0]);
    }

    proptest! {
        #[test]
        fn ranks_are_a_distribution(
            n in 1u32..40,
            raw in proptest::collection::vec((0u32..1000, 0u32..1000), 0..200),
            damping in 0.0f64..=1.0,
        ) {
            let edges: Vec<[u32; 2]> = raw.iter().map(|&(a, b)| [a % n, b % n]).collect();
            let inp = PageRankInput { damping, max_iterations: 50, ..input(n, &edges) };
            let out = ranks(&inp);
            prop_assert_eq!(out.ranks.len(), n as usize);
            prop_assert!(out.ranks.iter().all(|&r| r >= 0.0 && r.is_finite()));
            let sum: f64 = out.ranks.iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-9, "sum {}", sum);
            prop_assert!(out.iterations >= 1 && out.iterations <= 50);
        }
    }
}
