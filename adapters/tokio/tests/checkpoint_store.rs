//! Crash tests of `FileCheckpointStore`: torn temporary files, truncated and bit-flipped
//! checkpoints, keep-last-K pruning, and "nothing acknowledged as written is lost".
// Tests cut and flip bytes of frames they just read.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use rustkernel_core::checkpoint::CheckpointError;
use rustkernel_tokio::checkpoint_store::{
    CheckpointStoreError, FileCheckpointStore, SkipReason, SkippedCheckpoint, StoreOp,
};

/// A directory under the system's temporary directory, unique to this test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "rk-ckpt-{}-{}-{test}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Every file name in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("lists")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8")
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A checkpoint like a kernel's: some state and a vector.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    step: u64,
    ranks: Vec<f32>,
    label: String,
}

fn state(step: u64) -> State {
    State {
        step,
        ranks: (0..16u8).map(|i| f32::from(i) * 0.5).collect(),
        label: format!("step {step}"),
    }
}

async fn store(dir: &TempDir, keep_last: usize) -> FileCheckpointStore {
    FileCheckpointStore::open(dir.path(), 0x5eed, keep_last)
        .await
        .expect("opens")
}

async fn latest(store: &FileCheckpointStore) -> Option<(u64, State, Vec<SkippedCheckpoint>)> {
    store
        .load_latest::<State>()
        .await
        .expect("lists")
        .map(|loaded| (loaded.sequence, loaded.value, loaded.skipped))
}

#[tokio::test]
async fn saves_and_loads_the_newest_across_reopening() {
    let dir = TempDir::new("roundtrip");
    let first = store(&dir, 3).await;
    assert_eq!(latest(&first).await, None);
    for step in [1, 2, 9, 10] {
        first.save(step, &state(step)).await.expect("saved");
    }
    // Names sort by sequence: 10 after 9.
    assert_eq!(
        dir.names(),
        vec![
            ".00005eed.lock",
            "00005eed-00000000000000000002.ckpt",
            "00005eed-00000000000000000009.ckpt",
            "00005eed-00000000000000000010.ckpt",
        ]
    );
    // A new process opening the same directory sees the same.
    let second = store(&dir, 3).await;
    assert_eq!(latest(&second).await, Some((10, state(10), vec![])));
    assert_eq!(second.sequences().await.expect("lists"), vec![2, 9, 10]);
}

#[tokio::test]
async fn a_torn_temporary_file_is_ignored_and_cleaned_up_by_the_next_save() {
    let dir = TempDir::new("torn-temp");
    let store = store(&dir, 3).await;
    store.save(1, &state(1)).await.expect("saved");
    // A crash during the save of 2, before the rename: half a frame in a temporary file.
    let good = std::fs::read(store.path_of(1)).expect("reads");
    let temp = dir.path().join(format!(
        ".{}.4242.0.tmp",
        FileCheckpointStore::file_name(0x5eed, 2)
    ));
    std::fs::write(&temp, &good[..good.len() / 2]).expect("writes");

    assert_eq!(latest(&store).await, Some((1, state(1), vec![])));
    store.save(3, &state(3)).await.expect("saved");
    assert!(!temp.exists(), "the leftover is removed");
    assert_eq!(latest(&store).await, Some((3, state(3), vec![])));
}

#[tokio::test]
async fn a_truncated_newest_checkpoint_falls_back_to_the_previous_one() {
    let dir = TempDir::new("truncated");
    let store = store(&dir, 3).await;
    for step in 1..=3 {
        store.save(step, &state(step)).await.expect("saved");
    }
    let newest = store.path_of(3);
    let bytes = std::fs::read(&newest).expect("reads");
    for len in [0, 1, 10, 24, 25, bytes.len() - 1] {
        std::fs::write(&newest, &bytes[..len]).expect("writes");
        let (sequence, value, skipped) = latest(&store).await.expect("a good one");
        assert_eq!((sequence, value), (2, state(2)), "cut at {len}");
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].sequence, 3);
        assert_eq!(
            skipped[0].reason,
            SkipReason::Codec(CheckpointError::Truncated),
            "cut at {len}"
        );
    }
    // With both newer ones torn, the oldest is restored.
    let middle = store.path_of(2);
    std::fs::write(&middle, b"RKC").expect("writes");
    let (sequence, _, skipped) = latest(&store).await.expect("a good one");
    assert_eq!(sequence, 1);
    assert_eq!(skipped.len(), 2);
}

#[tokio::test]
async fn a_flipped_bit_anywhere_in_the_newest_falls_back_to_the_previous_one() {
    let dir = TempDir::new("bitflip");
    let store = store(&dir, 2).await;
    store.save(1, &state(1)).await.expect("saved");
    store.save(2, &state(2)).await.expect("saved");
    let newest = store.path_of(2);
    let bytes = std::fs::read(&newest).expect("reads");
    for byte in 0..bytes.len() {
        for bit in [0u8, 3, 7] {
            let mut flipped = bytes.clone();
            flipped[byte] ^= 1 << bit;
            std::fs::write(&newest, &flipped).expect("writes");
            let (sequence, value, skipped) = latest(&store).await.expect("a good one");
            assert_eq!((sequence, value), (1, state(1)), "byte {byte} bit {bit}");
            assert_eq!(skipped.len(), 1, "byte {byte} bit {bit}");
        }
    }
    // The payload's bits are caught by the CRC.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&newest, &flipped).expect("writes");
    let (_, _, skipped) = latest(&store).await.expect("a good one");
    assert_eq!(
        skipped[0].reason,
        SkipReason::Codec(CheckpointError::CrcMismatch)
    );
    // Saving the sequence again replaces the corrupt file.
    store.save(2, &state(2)).await.expect("saved");
    assert_eq!(latest(&store).await, Some((2, state(2), vec![])));
}

#[tokio::test]
async fn a_checkpoint_of_another_kernel_or_sequence_is_skipped() {
    let dir = TempDir::new("foreign");
    let mine = store(&dir, 3).await;
    let other = FileCheckpointStore::open(dir.path(), 0xbeef, 3)
        .await
        .expect("opens");
    mine.save(1, &state(1)).await.expect("saved");
    other.save(5, &state(5)).await.expect("saved");
    // Kernels sharing a directory do not see each other's checkpoints.
    assert_eq!(latest(&mine).await, Some((1, state(1), vec![])));
    // A file copied under the wrong name is refused.
    std::fs::copy(other.path_of(5), mine.path_of(5)).expect("copies");
    std::fs::copy(mine.path_of(1), mine.path_of(4)).expect("copies");
    let (sequence, _, skipped) = latest(&mine).await.expect("a good one");
    assert_eq!(sequence, 1);
    assert_eq!(
        skipped,
        vec![
            SkippedCheckpoint {
                sequence: 5,
                reason: SkipReason::WrongKernel { kernel_id: 0xbeef },
            },
            SkippedCheckpoint {
                sequence: 4,
                reason: SkipReason::WrongSequence { sequence: 1 },
            },
        ]
    );
    // Bytes of another type do not decode as this one.
    let wrong_type = mine.load_latest::<Vec<String>>().await.expect("lists");
    assert!(wrong_type.is_none());
}

#[tokio::test]
async fn only_the_newest_k_are_kept_and_a_lower_save_deletes_nothing_newer() {
    let dir = TempDir::new("prune");
    let store = store(&dir, 3).await;
    for step in 1..=10 {
        store.save(step, &state(step)).await.expect("saved");
        let expected: Vec<u64> = (step.saturating_sub(2).max(1)..=step).collect();
        assert_eq!(store.sequences().await.expect("lists"), expected);
    }
    // A lower sequence is kept, and deletes nothing newer than itself.
    store.save(5, &state(5)).await.expect("saved");
    assert_eq!(store.sequences().await.expect("lists"), vec![5, 8, 9, 10]);
    assert_eq!(latest(&store).await.map(|(s, _, _)| s), Some(10));
    store.save(11, &state(11)).await.expect("saved");
    assert_eq!(store.sequences().await.expect("lists"), vec![9, 10, 11]);
    // Files that are not checkpoints are left alone.
    std::fs::write(dir.path().join("README"), "mine").expect("writes");
    store.save(12, &state(12)).await.expect("saved");
    assert!(dir.names().contains(&"README".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_are_all_acknowledged_and_the_highest_wins() {
    let dir = TempDir::new("concurrent");
    let store = store(&dir, 3).await;
    let saves: Vec<_> = (1..=24u64)
        .map(|step| {
            let store = store.clone();
            tokio::spawn(async move { store.save(step, &state(step)).await })
        })
        .collect();
    for save in saves {
        save.await.expect("no panic").expect("saved");
    }
    assert_eq!(latest(&store).await, Some((24, state(24), vec![])));
    assert!(store.sequences().await.expect("lists").contains(&24));
    assert!(
        dir.names()
            .iter()
            .all(|name| name.ends_with(".ckpt") || name == ".00005eed.lock"),
        "no temporary file left"
    );
}

#[tokio::test]
async fn errors_are_typed() {
    let dir = TempDir::new("errors");
    assert_eq!(
        FileCheckpointStore::open(dir.path(), 1, 0).await.err(),
        Some(CheckpointStoreError::KeepLastZero)
    );
    std::fs::write(dir.path(), b"a file, not a directory").expect("writes");
    let error = FileCheckpointStore::open(dir.path().join("sub"), 1, 1)
        .await
        .expect_err("fails");
    assert!(
        matches!(
            error,
            CheckpointStoreError::Io {
                op: StoreOp::CreateDir,
                ..
            }
        ),
        "{error}"
    );
    std::fs::remove_file(dir.path()).expect("removes");
    // A directory removed under the store: no checkpoint, not an error.
    let store = store(&dir, 1).await;
    std::fs::remove_dir_all(dir.path()).expect("removes");
    assert_eq!(latest(&store).await, None);
    // Saving there fails with an I/O error, and never panics.
    let error = store.save(1, &state(1)).await.expect_err("fails");
    assert!(
        matches!(
            error,
            CheckpointStoreError::Io {
                op: StoreOp::Write,
                ..
            }
        ),
        "{error}"
    );
}

/// What a test does to the store between checks.
#[derive(Clone, Debug)]
enum Op {
    /// Save this sequence.
    Save(u64),
    /// A crash in the middle of a save: a temporary file holding a prefix of a frame.
    TornWrite { sequence: u64, keep: usize },
    /// The process restarts: the store is opened again.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..30).prop_map(Op::Save),
        2 => (0u64..30, 0usize..200).prop_map(|(sequence, keep)| Op::TornWrite { sequence, keep }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// After `save(s)` returned `Ok`, `load_latest` returns `s` or a higher sequence, with the
    /// value last saved under it, whatever torn writes and restarts came in between.
    #[test]
    fn nothing_acknowledged_is_lost(keep_last in 1usize..4, ops in prop::collection::vec(op(), 1..14)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let dir = TempDir::new("prop");
            let mut files = store(&dir, keep_last).await;
            // The model: the value last saved under each sequence.
            let mut saved = std::collections::BTreeMap::new();
            let mut acknowledged: Option<u64> = None;
            for (i, op) in ops.iter().enumerate() {
                match op {
                    Op::Save(sequence) => {
                        let value = State { label: format!("op {i}"), ..state(*sequence) };
                        files.save(*sequence, &value).await.expect("saved");
                        saved.insert(*sequence, value);
                        acknowledged = acknowledged.max(Some(*sequence));
                    }
                    Op::TornWrite { sequence, keep } => {
                        let frame = std::fs::read(dir.path().join(
                            FileCheckpointStore::file_name(0x5eed, acknowledged.unwrap_or(0))
                        )).unwrap_or_else(|_| vec![0x52; 64]);
                        let temp = dir.path().join(format!(
                            ".{}.99.{i}.tmp",
                            FileCheckpointStore::file_name(0x5eed, *sequence)
                        ));
                        std::fs::write(&temp, &frame[..(*keep).min(frame.len())]).expect("writes");
                    }
                    Op::Reopen => files = store(&dir, keep_last).await,
                }
                let loaded = latest(&files).await;
                match acknowledged {
                    None => prop_assert_eq!(loaded, None),
                    Some(newest) => {
                        let (sequence, value, skipped) = loaded.expect("a checkpoint");
                        prop_assert_eq!(sequence, newest);
                        prop_assert_eq!(Some(&value), saved.get(&sequence));
                        prop_assert!(skipped.is_empty());
                    }
                }
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// Damages checkpoint `sequence` on disk: flips a bit of its last payload byte (a CRC error).
fn damage(store: &FileCheckpointStore, sequence: u64) {
    let path = store.path_of(sequence);
    let mut bytes = std::fs::read(&path).expect("reads");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(&path, &bytes).expect("writes");
}

#[tokio::test]
async fn damaged_checkpoints_do_not_count_toward_keep_last() {
    let dir = TempDir::new("retention");
    let store = store(&dir, 2).await;
    for step in 1..=3 {
        store.save(step, &state(step)).await.expect("saved");
    }
    damage(&store, 3);
    store.save(4, &state(4)).await.expect("saved");
    // 3 is damaged, so the two good ones kept are 4 and 2; the damaged 3 stays until two good
    // newer ones exist (restore skips it anyway).
    assert_eq!(store.sequences().await.expect("lists"), vec![2, 3, 4]);
    damage(&store, 4);
    let (sequence, value, skipped) = latest(&store).await.expect("a good one is left");
    assert_eq!((sequence, value), (2, state(2)));
    assert_eq!(
        skipped.iter().map(|s| s.sequence).collect::<Vec<_>>(),
        vec![4, 3]
    );
    // With 4 and 3 damaged, saving 5 keeps 2 as the second good one.
    store.save(5, &state(5)).await.expect("saved");
    assert_eq!(store.sequences().await.expect("lists"), vec![2, 3, 4, 5]);
    // Two good ones newer than all the damage: everything older goes.
    store.save(6, &state(6)).await.expect("saved");
    assert_eq!(store.sequences().await.expect("lists"), vec![5, 6]);
    assert_eq!(latest(&store).await, Some((6, state(6), vec![])));
}

#[tokio::test]
async fn keep_last_one_never_deletes_the_only_good_checkpoint() {
    let dir = TempDir::new("retention-one");
    let store = store(&dir, 1).await;
    store.save(1, &state(1)).await.expect("saved");
    store.save(2, &state(2)).await.expect("saved");
    assert_eq!(store.sequences().await.expect("lists"), vec![2]);
    // A torn file under a higher name (written by hand, as a crashed copy would) is no
    // checkpoint: saving below it does not make it count.
    std::fs::write(store.path_of(9), b"RKC\x01").expect("writes");
    store.save(3, &state(3)).await.expect("saved");
    assert_eq!(store.sequences().await.expect("lists"), vec![3, 9]);
    damage(&store, 3);
    store.save(4, &state(4)).await.expect("saved");
    assert_eq!(store.sequences().await.expect("lists"), vec![4, 9]);
    let (sequence, _, skipped) = latest(&store).await.expect("a good one");
    assert_eq!(sequence, 4);
    assert_eq!(skipped.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_of_one_kernel_in_one_process_share_one_writer() {
    let dir = TempDir::new("two-stores");
    let first = store(&dir, 3).await;
    let second = store(&dir, 3).await;
    let saves: Vec<_> = (1..=400u64)
        .map(|step| {
            let store = if step % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { store.save(step, &state(step)).await })
        })
        .collect();
    let mut failed = Vec::new();
    for (step, save) in (1..=400u64).zip(saves) {
        if let Err(error) = save.await.expect("no panic") {
            failed.push((step, error));
        }
    }
    assert_eq!(failed, vec![], "every save succeeds");
    assert_eq!(latest(&first).await, Some((400, state(400), vec![])));
    assert_eq!(latest(&second).await, Some((400, state(400), vec![])));
    let sequences = first.sequences().await.expect("lists");
    assert!(sequences.ends_with(&[398, 399, 400]), "{sequences:?}");
    assert!(
        dir.names()
            .iter()
            .all(|name| name.ends_with(".ckpt") || name == ".00005eed.lock"),
        "no temporary file left: {:?}",
        dir.names()
    );
}

/// Set in a child process of [`a_second_process_gets_the_typed_error`]: the directory.
const CHILD_DIR: &str = "RK_CKPT_TEST_CHILD_DIR";
/// Set in that child: `try` (open, report, exit) or `hold` (open, report, wait for stdin to close).
const CHILD_MODE: &str = "RK_CKPT_TEST_CHILD_MODE";
/// What the child prints before its report, to tell it from the test harness's output.
const CHILD_SAYS: &str = "child says: ";

/// This test binary run again as a child process running only
/// [`a_second_process_gets_the_typed_error`], in `mode`.
fn child(dir: &TempDir, mode: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_second_process_gets_the_typed_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_MODE, mode)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns")
}

/// The child's next report.
fn report(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.as_mut().expect("piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    lines
        .find_map(|line| {
            // The harness prints `test name ... ` before it, on the same line.
            let line = line.expect("reads");
            line.split_once(CHILD_SAYS).map(|(_, said)| said.to_owned())
        })
        .expect("the child reports")
}

/// The child's side: open the store and say how it went.
async fn run_child(dir: PathBuf, mode: &str) {
    let opened = FileCheckpointStore::open(&dir, 0x5eed, 3).await;
    match &opened {
        Ok(_) => println!("{CHILD_SAYS}opened"),
        Err(error @ CheckpointStoreError::Locked { .. }) => {
            println!("{CHILD_SAYS}locked: {error}");
        }
        Err(error) => println!("{CHILD_SAYS}other error: {error:?}"),
    }
    if mode == "hold" {
        // Hold the store until the parent closes stdin.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
    }
    drop(opened);
}

#[tokio::test]
async fn a_second_process_gets_the_typed_error() {
    if let (Some(dir), Some(mode)) = (std::env::var_os(CHILD_DIR), std::env::var(CHILD_MODE).ok()) {
        return run_child(PathBuf::from(dir), &mode).await;
    }
    let dir = TempDir::new("two-processes");
    // This process writes kernel 0x5eed: another process cannot open it.
    let mine = store(&dir, 3).await;
    mine.save(1, &state(1)).await.expect("saved");
    let mut other = child(&dir, "try");
    let said = report(&mut other);
    assert!(other.wait().expect("exits").success());
    assert_eq!(
        said,
        "locked: checkpoints of kernel 00005eed are written by another process \
         (it holds the lock file .00005eed.lock)"
    );
    // Another kernel in the same directory is not locked.
    FileCheckpointStore::open(dir.path(), 0xbeef, 3)
        .await
        .expect("another kernel opens");
    // Once every store of the kernel is dropped here, the other process may write it...
    let mine_too = mine.clone();
    drop(mine);
    drop(mine_too);
    let mut other = child(&dir, "hold");
    assert_eq!(report(&mut other), "opened");
    // ...and while it does, this process gets the typed error, not a second writer.
    let error = FileCheckpointStore::open(dir.path(), 0x5eed, 3)
        .await
        .expect_err("locked by the child");
    assert_eq!(error, CheckpointStoreError::Locked { kernel_id: 0x5eed });
    // The lock dies with the process.
    drop(other.stdin.take());
    assert!(other.wait().expect("exits").success());
    let mine = store(&dir, 3).await;
    assert_eq!(latest(&mine).await, Some((1, state(1), vec![])));
}
