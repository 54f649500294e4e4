//! Durable checkpoints: frames of the core's codec in files, written atomically by one writer
//! per kernel, the last K good ones kept, and a restore that skips torn or corrupt files for
//! the newest good one.
//!
//! ```
//! use rustkernel_tokio::checkpoint_store::FileCheckpointStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("rk-doc-{}", std::process::id()));
//! let store = FileCheckpointStore::open(&dir, 7, 3).await?; // kernel 7, keep the last 3
//! store.save(1, &vec![0.25f32, 0.75]).await?;
//! store.save(2, &vec![0.5f32, 0.5]).await?;
//! let latest = store.load_latest::<Vec<f32>>().await?.expect("saved");
//! assert_eq!((latest.sequence, latest.value), (2, vec![0.5, 0.5]));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # On disk
//! Checkpoint `seq` of kernel `id` is the file `{id:08x}-{seq:020}.ckpt` (hexadecimal id,
//! zero-padded decimal sequence, so names sort by sequence), holding one frame of
//! [`rustkernel_core::checkpoint`]: header, postcard payload, CRC-32C. Several kernels may
//! share a directory.
//!
//! Kernel ids are `u32`s and every name the store makes from one is of fixed form (the one
//! above, the lock file `.{id:08x}.lock` and temporary files `.{name}.{pid}.{n}.tmp`): ASCII
//! letters, digits, `-` and `.`, never a path separator, never `.` or `..`, at most 71 bytes.
//! So no kernel id can name a file outside the directory, and there is no invalid kernel id.
//!
//! # One writer per kernel
//! A kernel's checkpoints in a directory have one writer at a time, so saves never race each
//! other's temporary files or pruning:
//! - In one process, every [`FileCheckpointStore`] opened on the same directory (compared
//!   after [`canonicalize`](std::fs::canonicalize)) for the same kernel shares one writer:
//!   their saves run one at a time, as if they were clones of one store. This is a
//!   process-wide registry, since the operating system's file lock belongs to one open file,
//!   not to a process.
//! - Against other processes, [`FileCheckpointStore::open`] takes an advisory exclusive lock
//!   (`flock` on Unix, `LockFileEx` on Windows, through [`fs4`]) on the kernel's lock file
//!   `.{id:08x}.lock`. When another process holds it, `open` fails with
//!   [`CheckpointStoreError::Locked`]: that process's files are left alone.
//!
//! The lock is held for the stores' lifetime, not per save: from the first `open` of the
//! kernel in this process until the last store of it (clones and saves still running on the
//! blocking pool included) is dropped. A process that dies releases it with its files, so a
//! crash leaves no stale lock. The lock file is never deleted (deleting a lock file another
//! process is about to lock would let two writers in). The lock is advisory: a program that
//! does not take it, or a directory reached through two paths that canonicalize differently
//! (two mounts of one file system), is not kept out, and a network file system may not honour
//! it.
//!
//! # Retention
//! After each save the store keeps the newest `keep_last` *good* checkpoints: it reads
//! checkpoints newest first and checks each frame (length, CRC, kernel id and sequence; not
//! the payload's type, which the store does not know) until it has counted `keep_last` good
//! ones, and deletes only files older than the oldest of those. A damaged file never counts,
//! so damage cannot make pruning delete good checkpoints, and the newest good checkpoint is
//! never deleted. Damaged files newer than that are kept (restore skips them) until enough
//! good checkpoints are newer; with fewer than `keep_last` good checkpoints nothing is
//! deleted. A save of sequence `s` never deletes a checkpoint of sequence `s` or higher.
//!
//! # Crash safety
//! [`FileCheckpointStore::save`] writes a temporary file (never taken for a checkpoint),
//! `fsync`s it, renames it over the final name and `fsync`s the directory,
//! so after a crash a checkpoint file is either absent or complete, and once `save` returned
//! `Ok` the checkpoint survives a power cut. Renaming is atomic on POSIX file systems;
//! directory `fsync` is done on Unix only (Windows has no such call).
//!
//! [`FileCheckpointStore::load_latest`] still checks every file it reads with the codec (CRC,
//! length, kernel id, sequence) because disks and people damage files after they were written;
//! a file that fails is skipped (and logged) for the next older one.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustkernel_core::checkpoint::{self, CheckpointError, FrameHeader, HEADER_LEN};
use rustkernel_core::error::{Classify, ErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What the store was doing when an I/O error struck.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StoreOp {
    /// Creating the directory.
    CreateDir,
    /// Listing the directory.
    List,
    /// Reading a checkpoint.
    Read,
    /// Writing the temporary file.
    Write,
    /// `fsync` of the temporary file or of the directory.
    Sync,
    /// Renaming the temporary file into place.
    Rename,
    /// Deleting an old checkpoint or a leftover temporary file.
    Remove,
    /// Opening or locking the kernel's lock file.
    Lock,
}

impl StoreOp {
    /// The operation's name (`"rename"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            StoreOp::CreateDir => "create_dir",
            StoreOp::List => "list",
            StoreOp::Read => "read",
            StoreOp::Write => "write",
            StoreOp::Sync => "sync",
            StoreOp::Rename => "rename",
            StoreOp::Remove => "remove",
            StoreOp::Lock => "lock",
        }
    }
}

impl fmt::Display for StoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a checkpoint store operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckpointStoreError {
    /// An I/O error (the full error, with its path, is logged with `tracing`).
    Io {
        /// What the store was doing.
        op: StoreOp,
        /// The error's kind.
        kind: io::ErrorKind,
    },
    /// The value could not be framed (postcard could not serialize it, or it is over 4 GiB).
    Codec(CheckpointError),
    /// `keep_last` was 0: a store must keep at least the checkpoint it just wrote.
    KeepLastZero,
    /// The blocking task doing the file work panicked or was cancelled.
    Background,
    /// Another process writes this kernel's checkpoints in this directory: it holds the
    /// kernel's lock file (see [one writer per kernel](self#one-writer-per-kernel)).
    Locked {
        /// The kernel.
        kernel_id: u32,
    },
}

impl fmt::Display for CheckpointStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointStoreError::Io { op, kind } => {
                write!(f, "checkpoint store I/O error during {op}: {kind}")
            }
            CheckpointStoreError::Codec(error) => write!(f, "checkpoint codec error: {error}"),
            CheckpointStoreError::KeepLastZero => {
                f.write_str("a checkpoint store must keep at least one checkpoint")
            }
            CheckpointStoreError::Background => {
                f.write_str("the checkpoint store's blocking task failed")
            }
            CheckpointStoreError::Locked { kernel_id } => write!(
                f,
                "checkpoints of kernel {kernel_id:08x} are written by another process \
                 (it holds the lock file {})",
                FileCheckpointStore::lock_file_name(*kernel_id)
            ),
        }
    }
}

impl std::error::Error for CheckpointStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointStoreError::Codec(error) => Some(error),
            _ => None,
        }
    }
}

/// I/O errors are [`ErrorKind::Transient`] unless the disk is full or the store is not allowed
/// there ([`ErrorKind::ResourceExhausted`], [`ErrorKind::Permanent`]); codec errors keep their
/// kind; a zero `keep_last` is [`ErrorKind::InvalidInput`]; a kernel locked by another process
/// is [`ErrorKind::Unavailable`] (it may be free once that process is gone).
impl Classify for CheckpointStoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            CheckpointStoreError::Io { kind, .. } => match kind {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                    ErrorKind::ResourceExhausted
                }
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    ErrorKind::Permanent
                }
                _ => ErrorKind::Transient,
            },
            CheckpointStoreError::Codec(error) => error.kind(),
            CheckpointStoreError::KeepLastZero => ErrorKind::InvalidInput,
            CheckpointStoreError::Background => ErrorKind::Transient,
            CheckpointStoreError::Locked { .. } => ErrorKind::Unavailable,
        }
    }
}

impl From<CheckpointError> for CheckpointStoreError {
    fn from(error: CheckpointError) -> Self {
        CheckpointStoreError::Codec(error)
    }
}

/// Why [`FileCheckpointStore::load_latest`] passed over a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// It could not be read.
    Io(io::ErrorKind),
    /// The codec refused it: truncated (a torn write), bad CRC (a flipped bit), foreign
    /// bytes, or a payload that is not the requested type.
    Codec(CheckpointError),
    /// Its header names another kernel than the file name.
    WrongKernel {
        /// The kernel id in the header.
        kernel_id: u32,
    },
    /// Its header has another sequence number than the file name.
    WrongSequence {
        /// The sequence in the header.
        sequence: u64,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Io(kind) => write!(f, "unreadable: {kind}"),
            SkipReason::Codec(error) => write!(f, "{error}"),
            SkipReason::WrongKernel { kernel_id } => {
                write!(f, "header names kernel {kernel_id:08x}")
            }
            SkipReason::WrongSequence { sequence } => {
                write!(f, "header names sequence {sequence}")
            }
        }
    }
}

/// A checkpoint passed over on the way to the one restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SkippedCheckpoint {
    /// Its sequence number (from its file name).
    pub sequence: u64,
    /// Why it was passed over.
    pub reason: SkipReason,
}

/// The newest good checkpoint, and the newer ones that were not.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedCheckpoint<T> {
    /// Its sequence number.
    pub sequence: u64,
    /// The checkpoint.
    pub value: T,
    /// Newer checkpoints that were torn, corrupt or unreadable, newest first.
    pub skipped: Vec<SkippedCheckpoint>,
}

/// Where a supervisor keeps checkpoints; [`FileCheckpointStore`] on disk,
/// [`MemoryCheckpointStore`] in memory.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Saves `value` as checkpoint `sequence`. Once this returned `Ok`, [`load_latest`] returns
    /// this checkpoint or a newer one (a higher sequence).
    ///
    /// [`load_latest`]: CheckpointStore::load_latest
    fn save<T: Serialize + Sync + ?Sized>(
        &self,
        sequence: u64,
        value: &T,
    ) -> impl Future<Output = Result<(), CheckpointStoreError>> + Send;

    /// The good checkpoint with the highest sequence, `None` when there is none.
    fn load_latest<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> impl Future<Output = Result<Option<LoadedCheckpoint<T>>, CheckpointStoreError>> + Send;
}

impl<S: CheckpointStore> CheckpointStore for Arc<S> {
    fn save<T: Serialize + Sync + ?Sized>(
        &self,
        sequence: u64,
        value: &T,
    ) -> impl Future<Output = Result<(), CheckpointStoreError>> + Send {
        S::save(self, sequence, value)
    }

    fn load_latest<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> impl Future<Output = Result<Option<LoadedCheckpoint<T>>, CheckpointStoreError>> + Send
    {
        S::load_latest(self)
    }
}

/// `value` as a whole frame for checkpoint `sequence` of `kernel_id`.
fn encode_frame<T: Serialize + ?Sized>(
    kernel_id: u32,
    sequence: u64,
    value: &T,
) -> Result<Vec<u8>, CheckpointError> {
    let payload = postcard::to_allocvec(value).map_err(|_| CheckpointError::Encode)?;
    let total = HEADER_LEN
        .checked_add(payload.len())
        .ok_or(CheckpointError::PayloadTooLarge)?;
    let mut frame = vec![0u8; total];
    checkpoint::encode_raw(FrameHeader::new(kernel_id, sequence), &payload, &mut frame)?;
    Ok(frame)
}

/// Decodes the frame of checkpoint `sequence` of `kernel_id`, checking that its header agrees.
fn decode_frame<T: DeserializeOwned>(
    kernel_id: u32,
    sequence: u64,
    bytes: &[u8],
) -> Result<T, SkipReason> {
    let (header, value) = checkpoint::decode::<T>(bytes).map_err(SkipReason::Codec)?;
    check_header(kernel_id, sequence, header)?;
    Ok(value)
}

/// Checks that `header` names checkpoint `sequence` of `kernel_id`.
fn check_header(kernel_id: u32, sequence: u64, header: FrameHeader) -> Result<(), SkipReason> {
    if header.kernel_id != kernel_id {
        return Err(SkipReason::WrongKernel {
            kernel_id: header.kernel_id,
        });
    }
    if header.sequence != sequence {
        return Err(SkipReason::WrongSequence {
            sequence: header.sequence,
        });
    }
    Ok(())
}

/// Whether `bytes` is a whole, intact frame of checkpoint `sequence` of `kernel_id`. The
/// payload is not deserialized: a store does not know its type.
fn is_good_frame(kernel_id: u32, sequence: u64, bytes: &[u8]) -> bool {
    checkpoint::decode_raw(bytes)
        .is_ok_and(|(header, _)| check_header(kernel_id, sequence, header).is_ok())
}

/// After saving `saved`, checkpoints below the returned sequence are deleted: the oldest of
/// the newest `keep_last` good checkpoints, or `saved` when that is lower. `None` (delete
/// nothing) while there are fewer than `keep_last` good ones.
///
/// `newest_first` yields every checkpoint's sequence, newest first, and whether it is good;
/// it is consumed only until `keep_last` good ones are found, so files older than those are
/// never read.
fn prune_below(
    keep_last: usize,
    saved: u64,
    newest_first: impl IntoIterator<Item = (u64, bool)>,
) -> Option<u64> {
    let oldest_kept = newest_first
        .into_iter()
        .filter_map(|(sequence, good)| good.then_some(sequence))
        .nth(keep_last.checked_sub(1)?)?;
    Some(oldest_kept.min(saved))
}

/// Checkpoints of one kernel in a directory: atomic writes, the newest `keep_last` good ones
/// kept, one writer per kernel, and a restore that falls back past torn or corrupt files. A
/// cheap [`Clone`] handle.
///
/// See the [module docs](self) for the file layout and the crash-safety argument. The file work
/// runs on tokio's blocking pool.
#[derive(Clone, Debug)]
pub struct FileCheckpointStore {
    inner: Arc<FileInner>,
}

#[derive(Debug)]
struct FileInner {
    dir: PathBuf,
    kernel_id: u32,
    keep_last: usize,
    /// This store's share of the kernel's one writer in the process; held by every clone and
    /// every save on the blocking pool, so the lock lasts until the last of them is done.
    claim: Claim,
}

/// The writer of one kernel's checkpoints in one directory, shared by every store of that
/// kernel in this process.
#[derive(Debug, Default)]
struct Writer {
    /// Saves (write, then prune) run one at a time, so pruning never races a write. Held by
    /// the blocking task itself, so a cancelled `save` keeps it until its file work is done.
    writing: Mutex<()>,
    /// Makes temporary file names unique within the process.
    temp_counter: AtomicU64,
}

/// A kernel written by this process: its writer, its locked lock file, and how many stores
/// claim it.
#[derive(Debug)]
struct Registered {
    writer: Arc<Writer>,
    /// Locked for as long as it is open: dropping the entry closes it and releases the lock.
    _lock_file: fs::File,
    claims: usize,
}

/// A kernel's key in [`WRITERS`]: its canonical directory and its id.
type WriterKey = (PathBuf, u32);

/// The kernels this process writes. Process-wide because an operating system file lock
/// belongs to one open file: a second store opening and locking the lock file again would be
/// refused (`flock`) or, worse, let in (`fcntl`), so stores of one kernel share one lock.
static WRITERS: Mutex<BTreeMap<WriterKey, Registered>> = Mutex::new(BTreeMap::new());

fn writers() -> MutexGuard<'static, BTreeMap<WriterKey, Registered>> {
    WRITERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One store's claim on its kernel's [`Writer`]. The last claim dropped in the process
/// closes the lock file, which releases the lock.
#[derive(Debug)]
struct Claim {
    key: WriterKey,
    writer: Arc<Writer>,
}

impl Claim {
    /// Claims the writer of `kernel_id` in the canonical directory `dir`, taking the lock
    /// file's lock unless this process holds it already.
    fn new(dir: PathBuf, kernel_id: u32) -> Result<Self, CheckpointStoreError> {
        let key = (dir, kernel_id);
        let mut writers = writers();
        if let Some(registered) = writers.get_mut(&key) {
            registered.claims = registered.claims.saturating_add(1);
            let writer = Arc::clone(&registered.writer);
            return Ok(Self { key, writer });
        }
        let path = key.0.join(FileCheckpointStore::lock_file_name(kernel_id));
        let lock_file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| io_error(StoreOp::Lock, &path, &error))?;
        match fs4::FileExt::try_lock(&lock_file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                tracing::warn!(path = %path.display(), "another process writes this kernel's checkpoints");
                return Err(CheckpointStoreError::Locked { kernel_id });
            }
            Err(fs4::TryLockError::Error(error)) => {
                return Err(io_error(StoreOp::Lock, &path, &error));
            }
        }
        let writer = Arc::new(Writer::default());
        writers.insert(
            key.clone(),
            Registered {
                writer: Arc::clone(&writer),
                _lock_file: lock_file,
                claims: 1,
            },
        );
        Ok(Self { key, writer })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut writers = writers();
        if let Some(registered) = writers.get_mut(&self.key) {
            registered.claims = registered.claims.saturating_sub(1);
            if registered.claims == 0 {
                // Closes the lock file while `WRITERS` is locked, so a store opened next in
                // this process finds the lock free.
                writers.remove(&self.key);
            }
        }
    }
}

impl FileCheckpointStore {
    /// A store for kernel `kernel_id` in `dir` (created if missing) that keeps the newest
    /// `keep_last` good checkpoints.
    ///
    /// The store becomes the kernel's writer: it shares the writer with the other stores of
    /// this kernel and directory in this process, and takes the kernel's lock file against
    /// other processes until the last of those stores is dropped (see
    /// [one writer per kernel](self#one-writer-per-kernel)).
    ///
    /// # Errors
    /// [`CheckpointStoreError::KeepLastZero`]; [`CheckpointStoreError::Locked`] when another
    /// process writes this kernel in `dir`; or an I/O error creating the directory
    /// ([`StoreOp::CreateDir`]) or opening or locking the lock file ([`StoreOp::Lock`]).
    pub async fn open(
        dir: impl Into<PathBuf>,
        kernel_id: u32,
        keep_last: usize,
    ) -> Result<Self, CheckpointStoreError> {
        if keep_last == 0 {
            return Err(CheckpointStoreError::KeepLastZero);
        }
        let dir = dir.into();
        let inner = tokio::task::spawn_blocking(move || {
            let canonical = fs::create_dir_all(&dir)
                .and_then(|()| fs::canonicalize(&dir))
                .map_err(|error| io_error(StoreOp::CreateDir, &dir, &error))?;
            let claim = Claim::new(canonical, kernel_id)?;
            Ok::<_, CheckpointStoreError>(FileInner {
                dir,
                kernel_id,
                keep_last,
                claim,
            })
        })
        .await
        .map_err(|_| CheckpointStoreError::Background)??;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The kernel whose checkpoints this store holds.
    #[must_use]
    pub fn kernel_id(&self) -> u32 {
        self.inner.kernel_id
    }

    /// How many good checkpoints are kept.
    #[must_use]
    pub fn keep_last(&self) -> usize {
        self.inner.keep_last
    }

    /// The file name of checkpoint `sequence` of `kernel_id`: `{kernel_id:08x}-{sequence:020}.ckpt`.
    #[must_use]
    pub fn file_name(kernel_id: u32, sequence: u64) -> String {
        format!("{kernel_id:08x}-{sequence:020}.ckpt")
    }

    /// The name of the lock file of `kernel_id`: `.{kernel_id:08x}.lock`.
    #[must_use]
    pub fn lock_file_name(kernel_id: u32) -> String {
        format!(".{kernel_id:08x}.lock")
    }

    /// The path of checkpoint `sequence` of this store's kernel.
    #[must_use]
    pub fn path_of(&self, sequence: u64) -> PathBuf {
        self.inner
            .dir
            .join(Self::file_name(self.inner.kernel_id, sequence))
    }

    /// Saves `value` as checkpoint `sequence`: writes a temporary file, `fsync`s it, renames
    /// it into place and `fsync`s the directory; then deletes the checkpoints older than
    /// both `sequence` and the newest `keep_last` good checkpoints (see
    /// [retention](self#retention)), and leftover temporary files of this kernel.
    ///
    /// Sequences need not be consecutive or increasing: saving an existing sequence replaces
    /// it (a corrupt checkpoint is replaced this way), and [`load_latest`] always picks the
    /// highest good one. A checkpoint is never deleted by a save of a lower sequence.
    ///
    /// Saves run one at a time, also across the stores of this kernel and directory in this
    /// process. Dropping the future does not stop a save under way: its file work finishes on
    /// the blocking pool, and only then may the next save start.
    ///
    /// [`load_latest`]: Self::load_latest
    ///
    /// # Errors
    /// [`CheckpointStoreError::Codec`] when the value cannot be serialized, otherwise an I/O
    /// error. When the error struck before the rename, the checkpoint was not saved and the
    /// previous ones are untouched; a failed pruning is only logged, since the checkpoint is
    /// saved by then.
    pub async fn save<T: Serialize + Sync + ?Sized>(
        &self,
        sequence: u64,
        value: &T,
    ) -> Result<(), CheckpointStoreError> {
        let frame = encode_frame(self.inner.kernel_id, sequence, value)?;
        self.save_frame(sequence, frame).await
    }

    async fn save_frame(&self, sequence: u64, frame: Vec<u8>) -> Result<(), CheckpointStoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _writing = inner
                .claim
                .writer
                .writing
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            inner.write_atomically(sequence, &frame)?;
            inner.prune(sequence);
            Ok(())
        })
        .await
        .map_err(|_| CheckpointStoreError::Background)?
    }

    /// The good checkpoint with the highest sequence, `None` when there is none.
    ///
    /// Files are tried newest first; one that cannot be read, is torn (truncated), fails its
    /// CRC, does not decode as `T` or whose header disagrees with its name is skipped, logged
    /// with `tracing::warn!` and listed in [`LoadedCheckpoint::skipped`]. Temporary files are
    /// never read.
    ///
    /// # Errors
    /// An I/O error listing the directory (a missing directory is no checkpoint, not an error).
    pub async fn load_latest<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<Option<LoadedCheckpoint<T>>, CheckpointStoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.load_latest())
            .await
            .map_err(|_| CheckpointStoreError::Background)?
    }

    /// The sequences of this kernel's checkpoint files, ascending, good or not.
    ///
    /// # Errors
    /// An I/O error listing the directory.
    pub async fn sequences(&self) -> Result<Vec<u64>, CheckpointStoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.list().map(|files| files.into_keys().collect()))
            .await
            .map_err(|_| CheckpointStoreError::Background)?
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn save<T: Serialize + Sync + ?Sized>(
        &self,
        sequence: u64,
        value: &T,
    ) -> impl Future<Output = Result<(), CheckpointStoreError>> + Send {
        FileCheckpointStore::save(self, sequence, value)
    }

    fn load_latest<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> impl Future<Output = Result<Option<LoadedCheckpoint<T>>, CheckpointStoreError>> + Send
    {
        FileCheckpointStore::load_latest(self)
    }
}

impl FileInner {
    fn name_prefix(&self) -> String {
        format!("{:08x}-", self.kernel_id)
    }

    /// The sequence of a checkpoint file name of this kernel: exactly
    /// `{id:08x}-{20 digits}.ckpt`.
    fn parse_name(&self, name: &str) -> Option<u64> {
        let digits = name
            .strip_prefix(&self.name_prefix())?
            .strip_suffix(".ckpt")?;
        if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Whether `name` is a temporary file of this kernel.
    fn is_temp_name(&self, name: &str) -> bool {
        name.strip_prefix('.')
            .is_some_and(|rest| rest.starts_with(&self.name_prefix()))
            && name.ends_with(".tmp")
    }

    /// This kernel's checkpoint files by sequence.
    fn list(&self) -> Result<BTreeMap<u64, PathBuf>, CheckpointStoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(error) => return Err(io_error(StoreOp::List, &self.dir, &error)),
        };
        let mut files = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|error| io_error(StoreOp::List, &self.dir, &error))?;
            let name = entry.file_name();
            if let Some(sequence) = name.to_str().and_then(|name| self.parse_name(name)) {
                files.insert(sequence, entry.path());
            }
        }
        Ok(files)
    }

    fn write_atomically(&self, sequence: u64, frame: &[u8]) -> Result<(), CheckpointStoreError> {
        let final_name = FileCheckpointStore::file_name(self.kernel_id, sequence);
        let counter = self
            .claim
            .writer
            .temp_counter
            .fetch_add(1, Ordering::Relaxed);
        let temp = self.dir.join(format!(
            ".{final_name}.{}.{counter}.tmp",
            std::process::id()
        ));
        let target = self.dir.join(&final_name);
        let written = write_synced(&temp, frame).and_then(|()| {
            fs::rename(&temp, &target).map_err(|error| io_error(StoreOp::Rename, &target, &error))
        });
        if let Err(error) = written {
            // Best effort: a leftover is ignored by `load_latest` and removed by the next save.
            let _ = fs::remove_file(&temp);
            return Err(error);
        }
        sync_dir(&self.dir)
    }

    /// Whether checkpoint file `path` holds an intact frame of checkpoint `sequence`.
    fn is_good(&self, sequence: u64, path: &Path) -> bool {
        match fs::read(path) {
            Ok(bytes) if is_good_frame(self.kernel_id, sequence, &bytes) => true,
            Ok(_) => {
                tracing::warn!(path = %path.display(), "a damaged checkpoint does not count toward keep_last");
                false
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "an unreadable checkpoint does not count toward keep_last");
                false
            }
        }
    }

    /// Deletes the checkpoints older than `saved` and than the newest `keep_last` good ones,
    /// and leftover temporary files of this kernel. Failures are logged: the checkpoint is
    /// saved already.
    fn prune(&self, saved: u64) {
        let files = match self.list() {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot list checkpoints to prune");
                return;
            }
        };
        let newest_first = files
            .iter()
            .rev()
            .map(|(&sequence, path)| (sequence, self.is_good(sequence, path)));
        if let Some(below) = prune_below(self.keep_last, saved, newest_first) {
            for path in files.range(..below).map(|(_, path)| path) {
                if let Err(error) = fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), %error, "cannot delete old checkpoint");
                }
            }
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_str().is_some_and(|name| self.is_temp_name(name)) {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed a torn checkpoint write")
                    }
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "cannot remove a torn checkpoint write");
                    }
                }
            }
        }
    }

    fn load_latest<T: DeserializeOwned>(
        &self,
    ) -> Result<Option<LoadedCheckpoint<T>>, CheckpointStoreError> {
        let files = self.list()?;
        let mut skipped = Vec::new();
        for (&sequence, path) in files.iter().rev() {
            let decoded = fs::read(path)
                .map_err(|error| SkipReason::Io(error.kind()))
                .and_then(|bytes| decode_frame::<T>(self.kernel_id, sequence, &bytes));
            match decoded {
                Ok(value) => {
                    return Ok(Some(LoadedCheckpoint {
                        sequence,
                        value,
                        skipped,
                    }));
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "skipping a bad checkpoint");
                    skipped.push(SkippedCheckpoint { sequence, reason });
                }
            }
        }
        Ok(None)
    }
}

/// Creates `path` (it must not exist), writes `bytes` and `fsync`s them.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointStoreError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| io_error(StoreOp::Write, path, &error))?;
    file.write_all(bytes)
        .map_err(|error| io_error(StoreOp::Write, path, &error))?;
    file.sync_all()
        .map_err(|error| io_error(StoreOp::Sync, path, &error))
}

/// `fsync`s the directory so a rename in it survives a power cut (Unix only).
fn sync_dir(dir: &Path) -> Result<(), CheckpointStoreError> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|error| io_error(StoreOp::Sync, dir, &error))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Logs `error` with its path and keeps its kind.
fn io_error(op: StoreOp, path: &Path, error: &io::Error) -> CheckpointStoreError {
    tracing::warn!(%op, path = %path.display(), %error, "checkpoint store I/O error");
    CheckpointStoreError::Io {
        op,
        kind: error.kind(),
    }
}

/// Checkpoints in memory, framed by the same codec as [`FileCheckpointStore`]: for tests, and
/// for supervisors whose kernels need not survive the process. A cheap [`Clone`] handle.
#[derive(Clone, Debug)]
pub struct MemoryCheckpointStore {
    inner: Arc<MemoryInner>,
}

#[derive(Debug)]
struct MemoryInner {
    kernel_id: u32,
    keep_last: usize,
    frames: Mutex<BTreeMap<u64, Vec<u8>>>,
}

impl MemoryCheckpointStore {
    /// An empty store for kernel `kernel_id` keeping the newest `keep_last` good checkpoints,
    /// with the [retention](self#retention) of [`FileCheckpointStore`].
    ///
    /// # Errors
    /// [`CheckpointStoreError::KeepLastZero`].
    pub fn try_new(kernel_id: u32, keep_last: usize) -> Result<Self, CheckpointStoreError> {
        if keep_last == 0 {
            return Err(CheckpointStoreError::KeepLastZero);
        }
        Ok(Self {
            inner: Arc::new(MemoryInner {
                kernel_id,
                keep_last,
                frames: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// The sequences held, ascending.
    #[must_use]
    pub fn sequences(&self) -> Vec<u64> {
        self.frames().keys().copied().collect()
    }

    /// Changes the stored frame of `sequence` in place, so a test can corrupt one; `false` when
    /// there is none. A test hook, not API.
    #[cfg(test)]
    fn modify_frame(&self, sequence: u64, change: impl FnOnce(&mut Vec<u8>)) -> bool {
        match self.frames().get_mut(&sequence) {
            Some(frame) => {
                change(frame);
                true
            }
            None => false,
        }
    }

    fn frames(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<u8>>> {
        self.inner
            .frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn save_now<T: Serialize + ?Sized>(
        &self,
        sequence: u64,
        value: &T,
    ) -> Result<(), CheckpointStoreError> {
        let kernel_id = self.inner.kernel_id;
        let frame = encode_frame(kernel_id, sequence, value)?;
        let mut frames = self.frames();
        frames.insert(sequence, frame);
        let newest_first = frames
            .iter()
            .rev()
            .map(|(&held, frame)| (held, is_good_frame(kernel_id, held, frame)));
        if let Some(below) = prune_below(self.inner.keep_last, sequence, newest_first) {
            // Everything below `below` goes: keep the rest.
            let kept = frames.split_off(&below);
            *frames = kept;
        }
        Ok(())
    }

    fn load_now<T: DeserializeOwned>(&self) -> Option<LoadedCheckpoint<T>> {
        let frames = self.frames();
        let mut skipped = Vec::new();
        for (&sequence, frame) in frames.iter().rev() {
            match decode_frame::<T>(self.inner.kernel_id, sequence, frame) {
                Ok(value) => {
                    return Some(LoadedCheckpoint {
                        sequence,
                        value,
                        skipped,
                    });
                }
                Err(reason) => skipped.push(SkippedCheckpoint { sequence, reason }),
            }
        }
        None
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn save<T: Serialize + Sync + ?Sized>(
        &self,
        sequence: u64,
        value: &T,
    ) -> impl Future<Output = Result<(), CheckpointStoreError>> + Send {
        let saved = self.save_now(sequence, value);
        async move { saved }
    }

    fn load_latest<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> impl Future<Output = Result<Option<LoadedCheckpoint<T>>, CheckpointStoreError>> + Send
    {
        let loaded = self.load_now();
        async move { Ok(loaded) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> FileInner {
        FileInner {
            dir: PathBuf::from("."),
            kernel_id: 0xab,
            keep_last: 2,
            claim: Claim {
                key: (PathBuf::from("/nonexistent"), 0xab),
                writer: Arc::default(),
            },
        }
    }

    #[test]
    fn names_sort_by_sequence_and_parse_back() {
        let a = FileCheckpointStore::file_name(0xab, 9);
        let b = FileCheckpointStore::file_name(0xab, 10);
        assert_eq!(a, "000000ab-00000000000000000009.ckpt");
        assert!(a < b);
        let inner = inner();
        assert_eq!(inner.parse_name(&a), Some(9));
        assert_eq!(
            inner.parse_name(&FileCheckpointStore::file_name(0xab, u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(
            inner.parse_name(&FileCheckpointStore::file_name(0xac, 9)),
            None
        );
        assert_eq!(inner.parse_name(&format!(".{a}.1.0.tmp")), None);
        assert_eq!(inner.parse_name("000000ab-9.ckpt"), None);
        assert_eq!(inner.parse_name("000000ab-0000000000000000000x.ckpt"), None);
        assert!(inner.is_temp_name(&format!(".{a}.1.0.tmp")));
        assert!(!inner.is_temp_name(&a));
    }

    #[test]
    fn no_kernel_id_names_a_file_outside_the_directory() {
        for kernel_id in [0, 1, 0xab, 0x2e2e_2f2f, 0x8000_0000, u32::MAX] {
            for sequence in [0, 1, u64::MAX] {
                let temp = format!(
                    ".{}.{}.{}.tmp",
                    FileCheckpointStore::file_name(kernel_id, sequence),
                    u32::MAX,
                    u64::MAX
                );
                for name in [
                    FileCheckpointStore::file_name(kernel_id, sequence),
                    FileCheckpointStore::lock_file_name(kernel_id),
                    temp,
                ] {
                    assert!(name.len() <= 71, "{name}");
                    assert!(name != "." && name != "..", "{name}");
                    assert!(
                        name.bytes()
                            .all(|byte| byte.is_ascii_hexdigit() || b"-.tmpcklo".contains(&byte)),
                        "{name}"
                    );
                    let path = Path::new("dir").join(&name);
                    assert_eq!(path.parent(), Some(Path::new("dir")), "{name}");
                    assert_eq!(path.file_name().and_then(|n| n.to_str()), Some(&*name));
                }
            }
        }
    }

    #[test]
    fn pruning_keeps_the_newest_k_good_ones_and_nothing_at_or_above_the_save() {
        let good = |sequences: &[(u64, bool)]| sequences.to_vec();
        // Newest first: 4 good, 3 damaged, 2 good, 1 good.
        let files = good(&[(4, true), (3, false), (2, true), (1, true)]);
        assert_eq!(prune_below(2, 4, files.clone()), Some(2));
        assert_eq!(prune_below(1, 4, files.clone()), Some(4));
        assert_eq!(prune_below(3, 4, files.clone()), Some(1));
        // Fewer good ones than keep_last: nothing goes.
        assert_eq!(prune_below(4, 4, files.clone()), None);
        // A save of a lower sequence deletes nothing at or above it.
        assert_eq!(prune_below(1, 2, files), Some(2));
        assert_eq!(prune_below(0, 4, good(&[(4, true)])), None);
        // Only as many files are checked as needed.
        let mut checked = 0;
        let lazily = (1..=100u64).rev().map(|sequence| {
            checked += 1;
            (sequence, true)
        });
        assert_eq!(prune_below(3, 100, lazily), Some(98));
        assert_eq!(checked, 3);
    }

    #[tokio::test]
    async fn memory_store_retention_skips_damaged_checkpoints() {
        let store = MemoryCheckpointStore::try_new(1, 2).expect("valid");
        for sequence in 1..=3u64 {
            store.save(sequence, &sequence).await.expect("saved");
        }
        assert!(store.modify_frame(3, |frame| frame.truncate(10)));
        store.save(4, &4u64).await.expect("saved");
        assert_eq!(store.sequences(), vec![2, 3, 4]);
        assert!(store.modify_frame(4, |frame| frame.truncate(10)));
        let loaded = store.load_latest::<u64>().await.expect("ok").expect("some");
        assert_eq!((loaded.sequence, loaded.value), (2, 2));
        store.save(5, &5u64).await.expect("saved");
        store.save(6, &6u64).await.expect("saved");
        assert_eq!(store.sequences(), vec![5, 6]);
    }

    #[test]
    fn frames_round_trip_and_check_their_header() {
        let frame = encode_frame(3, 5, &(1u32, "state")).expect("encodes");
        let value: (u32, String) = decode_frame(3, 5, &frame).expect("decodes");
        assert_eq!(value, (1, "state".to_owned()));
        assert_eq!(
            decode_frame::<(u32, String)>(4, 5, &frame),
            Err(SkipReason::WrongKernel { kernel_id: 3 })
        );
        assert_eq!(
            decode_frame::<(u32, String)>(3, 6, &frame),
            Err(SkipReason::WrongSequence { sequence: 5 })
        );
        assert_eq!(
            decode_frame::<(u32, String)>(3, 5, frame.get(..frame.len() - 1).expect("short")),
            Err(SkipReason::Codec(CheckpointError::Truncated))
        );
    }

    #[tokio::test]
    async fn memory_store_keeps_the_last_k_and_falls_back() {
        let store = MemoryCheckpointStore::try_new(1, 2).expect("valid");
        for sequence in 1..=4u64 {
            store.save(sequence, &sequence).await.expect("saved");
        }
        assert_eq!(store.sequences(), vec![3, 4]);
        assert!(store.modify_frame(4, |frame| frame.truncate(10)));
        let loaded = store.load_latest::<u64>().await.expect("ok").expect("some");
        assert_eq!((loaded.sequence, loaded.value), (3, 3));
        assert_eq!(
            loaded.skipped,
            vec![SkippedCheckpoint {
                sequence: 4,
                reason: SkipReason::Codec(CheckpointError::Truncated)
            }]
        );
        assert_eq!(
            MemoryCheckpointStore::try_new(1, 0).err(),
            Some(CheckpointStoreError::KeepLastZero)
        );
    }
}
