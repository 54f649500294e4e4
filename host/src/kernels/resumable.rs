//! PageRank as a [`CheckpointableKernel`]: a run that stops every N iterations or T seconds
//! for a checkpoint, and that resumes from one to the same result, bit for bit, as a run that
//! was never interrupted.
//!
//! A [`PageRankRun`] holds the iteration state (the ranks and the number of iterations done);
//! [`PageRankRun::advance`] iterates until the run is done, a checkpoint is due
//! ([`CheckpointEvery`]) or it is cancelled. Its checkpoint is a [`PageRankCheckpoint`]: the
//! ranks after iteration `iteration`. Both this run and the uninterrupted
//! [`run_cpu`](super::run_cpu) iterate through the same function, so resuming repeats no
//! arithmetic differently.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rustkernel_host::kernels::{self, Advanced, CheckpointEvery, PageRankRun};
//!
//! let request = kernels::parse_request(
//!     kernels::PAGERANK,
//!     br#"{"num_nodes": 4, "edges": [[0, 1], [1, 2], [2, 0], [3, 2]], "tolerance": 0}"#,
//! )?;
//! let kernels::KernelRequest::PageRank(input) = request else { unreachable!() };
//! let every = CheckpointEvery::iterations(10);
//! let mut run = PageRankRun::new(Arc::new(input.clone()))?;
//! assert_eq!(run.advance(&every, &mut || Duration::ZERO, &|| false), Advanced::CheckpointDue);
//! let saved = run.state(); // after iteration 10
//!
//! // A fresh run (after a crash) restored from the checkpoint finishes as the first would.
//! let mut resumed = PageRankRun::new(Arc::new(input))?;
//! resumed.apply(saved)?;
//! while resumed.advance(&every, &mut || Duration::ZERO, &|| false) != Advanced::Done {}
//! while run.advance(&every, &mut || Duration::ZERO, &|| false) != Advanced::Done {}
//! assert_eq!(resumed.output(), run.output());
//! # Ok::<(), kernels::KernelError>(())
//! ```

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use rustkernel_core::error::ErrorKind;
use rustkernel_core::traits::{self, CheckpointableKernel};
use serde::{Deserialize, Serialize};

use super::pagerank::{initial_ranks, step};
use super::{Csr, KernelError, PageRankInput, PageRankOutput};

/// When a run stops for a checkpoint: after `iterations` iterations or once `interval` has
/// passed since the last checkpoint, whichever comes first; neither set means never (the run
/// goes on until it is done).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointEvery {
    /// Iterations between checkpoints.
    pub iterations: Option<NonZeroU32>,
    /// Time between checkpoints.
    #[serde(default, with = "humantime_serde::option")]
    pub interval: Option<Duration>,
}

impl CheckpointEvery {
    /// Every `n` iterations (`0`: never by count).
    #[must_use]
    pub fn iterations(n: u32) -> Self {
        Self {
            iterations: NonZeroU32::new(n),
            interval: None,
        }
    }

    /// The same, and also once `interval` passed.
    #[must_use]
    pub fn or_after(self, interval: Duration) -> Self {
        Self {
            interval: Some(interval),
            ..self
        }
    }
}

/// Where [`PageRankRun::advance`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advanced {
    /// The ranks converged or the iteration cap was reached: [`PageRankRun::output`] is the
    /// result.
    Done,
    /// A checkpoint is due ([`CheckpointEvery`]); call `advance` again after taking it.
    CheckpointDue,
    /// `cancelled` returned `true` before an iteration; the state is that of the last whole
    /// iteration.
    Cancelled,
}

/// The state of a PageRank run after `iteration` iterations: what a checkpoint holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageRankCheckpoint {
    /// Iterations done.
    pub iteration: u32,
    /// The ranks after them, one per node.
    pub ranks: Vec<f64>,
    /// Whether the last iteration's change was under the tolerance (the run is over).
    pub converged: bool,
}

/// A chunk of a PageRank job for a worker process: `iterations` more iterations from the
/// checkpoint `from`. The worker is stateless, so the request carries the graph; its answer
/// is the next checkpoint
/// ([`KernelResponse::PageRankState`](super::KernelResponse::PageRankState)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageRankSteps {
    /// The job's input.
    pub input: PageRankInput,
    /// Where to start.
    pub from: PageRankCheckpoint,
    /// How many iterations to run at most (fewer when the run converges or reaches its cap).
    pub iterations: u32,
}

/// Checks a chunk: a valid input, a checkpoint that fits it, at least one iteration.
///
/// # Errors
/// [`KernelError::InvalidInput`] naming the problem.
pub(super) fn validate_steps(steps: &PageRankSteps) -> Result<(), KernelError> {
    super::pagerank::validate(&steps.input)?;
    if steps.iterations == 0 {
        return Err(KernelError::InvalidInput(
            "a chunk runs at least one iteration".to_owned(),
        ));
    }
    check_fits(&steps.input, &steps.from)
}

/// Runs a chunk on the calling thread: the checkpoint after it. `cancelled` is polled
/// before each iteration.
///
/// # Errors
/// [`KernelError::InvalidInput`] for a chunk [`validate_steps`] refuses;
/// [`KernelError::Cancelled`].
pub(super) fn run_steps(
    steps: &PageRankSteps,
    cancelled: &dyn Fn() -> bool,
) -> Result<PageRankCheckpoint, KernelError> {
    validate_steps(steps)?;
    let mut run = PageRankRun::new(Arc::new(steps.input.clone()))?;
    run.apply(steps.from.clone())?;
    let every = CheckpointEvery::iterations(steps.iterations);
    match run.advance(&every, &mut || Duration::ZERO, cancelled) {
        Advanced::Cancelled => Err(KernelError::Cancelled),
        Advanced::Done | Advanced::CheckpointDue => Ok(run.state()),
    }
}

/// Whether `checkpoint` can be a state of a run of `input`.
fn check_fits(input: &PageRankInput, checkpoint: &PageRankCheckpoint) -> Result<(), KernelError> {
    let invalid = |why: String| Err(KernelError::InvalidInput(why));
    if checkpoint.ranks.len() != input.num_nodes as usize {
        return invalid(format!(
            "the checkpoint has {} ranks for {} nodes",
            checkpoint.ranks.len(),
            input.num_nodes
        ));
    }
    if checkpoint.iteration > input.max_iterations {
        return invalid(format!(
            "the checkpoint is of iteration {}, past max_iterations {}",
            checkpoint.iteration, input.max_iterations
        ));
    }
    if let Some(bad) = checkpoint
        .ranks
        .iter()
        .find(|rank| !rank.is_finite() || **rank < 0.0)
    {
        return invalid(format!("the checkpoint holds a rank of {bad}"));
    }
    Ok(())
}

/// A PageRank run that stops for checkpoints and resumes from them.
#[derive(Clone, Debug)]
pub struct PageRankRun {
    input: Arc<PageRankInput>,
    csr: Csr,
    ranks: Vec<f64>,
    next: Vec<f64>,
    contrib: Vec<f64>,
    iteration: u32,
    converged: bool,
}

impl PageRankRun {
    /// A run of `input` at iteration 0.
    ///
    /// # Errors
    /// [`KernelError::InvalidInput`] when the input does not pass validation.
    pub fn new(input: Arc<PageRankInput>) -> Result<Self, KernelError> {
        super::pagerank::validate(&input)?;
        let csr = Csr::build(&input)?;
        let n = input.num_nodes as usize;
        Ok(Self {
            ranks: initial_ranks(input.num_nodes),
            next: vec![0.0; n],
            contrib: vec![0.0; n],
            csr,
            input,
            iteration: 0,
            converged: false,
        })
    }

    /// The input.
    #[must_use]
    pub fn input(&self) -> &PageRankInput {
        &self.input
    }

    /// Iterations done.
    #[must_use]
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The most iterations the run makes (it may converge sooner).
    #[must_use]
    pub fn max_iterations(&self) -> u32 {
        self.input.max_iterations
    }

    /// Whether the run is over: converged, or at its iteration cap.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.converged || self.iteration >= self.input.max_iterations
    }

    /// Iterates until the run is done, a checkpoint is due or it is cancelled. `elapsed` is
    /// the time since the last checkpoint (read after each iteration, against
    /// [`CheckpointEvery::interval`]); `cancelled` is polled before each iteration. At least
    /// one iteration runs unless the run is done or cancelled.
    pub fn advance(
        &mut self,
        every: &CheckpointEvery,
        elapsed: &mut dyn FnMut() -> Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Advanced {
        let mut since_checkpoint = 0u32;
        loop {
            if self.is_done() {
                return Advanced::Done;
            }
            if cancelled() {
                return Advanced::Cancelled;
            }
            self.iteration += 1;
            let delta = step(
                &self.csr,
                self.input.damping,
                &mut self.ranks,
                &mut self.next,
                &mut self.contrib,
            );
            self.converged = delta < self.input.tolerance;
            since_checkpoint += 1;
            if self.is_done() {
                return Advanced::Done;
            }
            let by_count = every
                .iterations
                .is_some_and(|n| since_checkpoint >= n.get());
            let by_time = every.interval.is_some_and(|t| elapsed() >= t);
            if by_count || by_time {
                return Advanced::CheckpointDue;
            }
        }
    }

    /// The result so far (the final one once [`is_done`](Self::is_done)).
    #[must_use]
    pub fn output(&self) -> PageRankOutput {
        PageRankOutput {
            ranks: self.ranks.clone(),
            iterations: self.iteration,
        }
    }

    /// The state as a checkpoint.
    #[must_use]
    pub fn state(&self) -> PageRankCheckpoint {
        PageRankCheckpoint {
            iteration: self.iteration,
            ranks: self.ranks.clone(),
            converged: self.converged,
        }
    }

    /// Replaces the state with `checkpoint`, taken of a run of the same input.
    ///
    /// # Errors
    /// [`KernelError::InvalidInput`] when it cannot be: another number of nodes, more
    /// iterations than the cap, or a rank that is negative or not finite. The state is then
    /// unchanged.
    pub fn apply(&mut self, checkpoint: PageRankCheckpoint) -> Result<(), KernelError> {
        check_fits(&self.input, &checkpoint)?;
        self.ranks = checkpoint.ranks;
        self.iteration = checkpoint.iteration;
        self.converged = checkpoint.converged;
        Ok(())
    }
}

/// The chapter's trait: a checkpoint is [`PageRankRun::state`], a restore
/// [`PageRankRun::apply`] (a checkpoint that does not fit is
/// [`ErrorKind::InvalidInput`]).
impl CheckpointableKernel for PageRankRun {
    type Checkpoint = PageRankCheckpoint;

    async fn checkpoint(&self) -> traits::Result<PageRankCheckpoint> {
        Ok(self.state())
    }

    async fn restore(&mut self, checkpoint: PageRankCheckpoint) -> traits::Result<()> {
        self.apply(checkpoint)
            .map_err(|_| traits::KernelError::new(ErrorKind::InvalidInput))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::panic)] // tests index what they built and fail loudly

    use proptest::prelude::*;

    use super::*;
    use crate::kernels::{default_damping, default_tolerance};

    fn input(num_nodes: u32, edges: &[[u32; 2]], max_iterations: u32) -> Arc<PageRankInput> {
        Arc::new(PageRankInput {
            num_nodes,
            edges: edges.to_vec(),
            damping: default_damping(),
            max_iterations,
            tolerance: default_tolerance(),
        })
    }

    fn never() -> bool {
        false
    }

    fn finish(run: &mut PageRankRun, every: &CheckpointEvery) -> u32 {
        let mut stops = 0;
        while run.advance(every, &mut || Duration::ZERO, &never) == Advanced::CheckpointDue {
            stops += 1;
        }
        stops
    }

    fn uninterrupted(input: &PageRankInput) -> PageRankOutput {
        super::super::pagerank::run(input, &never).expect("runs")
    }

    #[test]
    fn checkpoints_come_every_n_iterations() {
        let inp = input(5, &[[1, 0], [2, 0], [3, 0], [4, 0], [0, 1]], 23);
        let mut inp_no_tol = (*inp).clone();
        inp_no_tol.tolerance = 0.0;
        let mut run = PageRankRun::new(Arc::new(inp_no_tol)).expect("valid");
        let every = CheckpointEvery::iterations(5);
        let mut seen = Vec::new();
        while run.advance(&every, &mut || Duration::ZERO, &never) == Advanced::CheckpointDue {
            seen.push(run.iteration());
        }
        assert_eq!(seen, [5, 10, 15, 20]);
        assert_eq!(run.iteration(), 23);
        assert!(run.is_done());
    }

    #[test]
    fn checkpoints_come_after_the_interval_too() {
        let mut inp = (*input(3, &[[0, 1], [1, 2]], 100)).clone();
        inp.tolerance = 0.0;
        let mut run = PageRankRun::new(Arc::new(inp)).expect("valid");
        // A clock that moves 1 s per read: the third read is past 2.5 s.
        let mut now = Duration::ZERO;
        let mut clock = || {
            now += Duration::from_secs(1);
            now
        };
        let every = CheckpointEvery::iterations(50).or_after(Duration::from_millis(2500));
        assert_eq!(
            run.advance(&every, &mut clock, &never),
            Advanced::CheckpointDue
        );
        assert_eq!(run.iteration(), 3);
        // Without any rule the run goes to its end.
        assert_eq!(
            run.advance(&CheckpointEvery::default(), &mut clock, &never),
            Advanced::Done
        );
        assert_eq!(run.iteration(), 100);
    }

    #[test]
    fn cancellation_keeps_the_last_whole_iteration() {
        let inp = input(4, &[[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]], 100);
        let mut run = PageRankRun::new(inp).expect("valid");
        let polls = std::cell::Cell::new(0);
        let cancel = || {
            polls.set(polls.get() + 1);
            polls.get() > 4
        };
        let stop = run.advance(&CheckpointEvery::default(), &mut || Duration::ZERO, &cancel);
        assert_eq!(stop, Advanced::Cancelled);
        assert_eq!(run.iteration(), 4);
    }

    #[test]
    fn a_checkpoint_that_does_not_fit_is_refused_and_changes_nothing() {
        let mut run = PageRankRun::new(input(3, &[[0, 1]], 10)).expect("valid");
        let before = run.state();
        for (checkpoint, needle) in [
            (
                PageRankCheckpoint {
                    iteration: 1,
                    ranks: vec![0.5; 2],
                    converged: false,
                },
                "2 ranks for 3 nodes",
            ),
            (
                PageRankCheckpoint {
                    iteration: 11,
                    ranks: vec![0.1; 3],
                    converged: false,
                },
                "past max_iterations",
            ),
            (
                PageRankCheckpoint {
                    iteration: 1,
                    ranks: vec![0.1, f64::NAN, 0.1],
                    converged: false,
                },
                "NaN",
            ),
        ] {
            match run.apply(checkpoint) {
                Err(KernelError::InvalidInput(message)) => {
                    assert!(message.contains(needle), "{message}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(run.state(), before);
        }
    }

    #[tokio::test]
    async fn the_chapters_trait_round_trips() {
        let inp = input(4, &[[0, 1], [1, 2], [2, 0], [3, 2]], 40);
        let mut run = PageRankRun::new(inp.clone()).expect("valid");
        let _ = run.advance(
            &CheckpointEvery::iterations(7),
            &mut || Duration::ZERO,
            &never,
        );
        let saved = run.checkpoint().await.expect("taken");
        let mut fresh = PageRankRun::new(inp).expect("valid");
        fresh.restore(saved.clone()).await.expect("fits");
        assert_eq!(fresh.checkpoint().await.expect("taken"), saved);
        let wrong = PageRankCheckpoint {
            ranks: vec![],
            ..saved
        };
        assert_eq!(
            fresh.restore(wrong).await,
            Err(traits::KernelError::new(ErrorKind::InvalidInput))
        );
    }

    #[test]
    fn chunks_from_checkpoints_chain_to_the_uninterrupted_result() {
        let mut inp = (*input(
            7,
            &[[0, 1], [1, 2], [2, 0], [3, 2], [4, 5], [5, 6], [6, 4]],
            45,
        ))
        .clone();
        inp.tolerance = 0.0;
        let mut state = PageRankRun::new(Arc::new(inp.clone()))
            .expect("valid")
            .state();
        let mut chunks = 0;
        while state.iteration < inp.max_iterations {
            let steps = PageRankSteps {
                input: inp.clone(),
                from: state,
                iterations: 10,
            };
            // Through postcard, as the worker gets it and answers.
            let steps: PageRankSteps =
                postcard::from_bytes(&postcard::to_allocvec(&steps).expect("encodes"))
                    .expect("decodes");
            state = run_steps(&steps, &never).expect("runs");
            chunks += 1;
        }
        assert_eq!(chunks, 5);
        assert_eq!(state.iteration, 45);
        assert_eq!(state.ranks, uninterrupted(&inp).ranks);
        let bad = PageRankSteps {
            input: inp.clone(),
            from: state.clone(),
            iterations: 0,
        };
        assert!(matches!(
            run_steps(&bad, &never),
            Err(KernelError::InvalidInput(_))
        ));
        let short = PageRankSteps {
            input: inp,
            from: PageRankCheckpoint {
                ranks: vec![0.5; 2],
                ..state
            },
            iterations: 1,
        };
        assert!(
            matches!(run_steps(&short, &never), Err(KernelError::InvalidInput(m)) if m.contains("2 ranks for 7 nodes"))
        );
    }

    proptest! {
        /// Stopping at any iteration, keeping only the checkpoint (through postcard, as the
        /// store keeps it) and resuming in a fresh run gives the same bits as never stopping.
        #[test]
        fn resuming_from_any_checkpoint_gives_the_uninterrupted_result(
            n in 1u32..30,
            raw in proptest::collection::vec((0u32..1000, 0u32..1000), 0..120),
            max_iterations in 1u32..60,
            every in 1u32..10,
            stop_after in 0u32..8,
            tolerance in prop_oneof![Just(0.0), Just(1e-6), Just(1e-10)],
        ) {
            let edges: Vec<[u32; 2]> = raw.iter().map(|&(a, b)| [a % n, b % n]).collect();
            let inp = Arc::new(PageRankInput {
                tolerance,
                ..(*input(n, &edges, max_iterations)).clone()
            });
            let expected = uninterrupted(&inp);
            let every = CheckpointEvery::iterations(every);
            let mut first = PageRankRun::new(inp.clone()).expect("valid");
            let mut bytes = postcard::to_allocvec(&first.state()).expect("encodes");
            for _ in 0..stop_after {
                if first.advance(&every, &mut || Duration::ZERO, &never) == Advanced::Done {
                    break;
                }
                bytes = postcard::to_allocvec(&first.state()).expect("encodes");
            }
            // The crash: everything but the checkpoint's bytes is lost.
            drop(first);
            let mut resumed = PageRankRun::new(inp).expect("valid");
            resumed
                .apply(postcard::from_bytes(&bytes).expect("decodes"))
                .expect("fits");
            let _ = finish(&mut resumed, &every);
            let got = resumed.output();
            prop_assert_eq!(got.iterations, expected.iterations);
            let same_bits = got
                .ranks
                .iter()
                .zip(&expected.ranks)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            prop_assert!(same_bits, "{:?} != {:?}", got.ranks, expected.ranks);
        }
    }
}
