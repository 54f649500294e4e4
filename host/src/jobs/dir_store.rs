//! [`DirJobStore`]: jobs as files under `[jobs] dir`, one directory per job.
//!
//! ```text
//! <dir>/<job id>/job.json                 the record (JobRecord), replaced atomically
//! <dir>/<job id>/input.bin                the kernel request (postcard), written once
//! <dir>/<job id>/result.bin               the result (postcard: exact floats), once it succeeded
//! <dir>/<job id>/cancel                   present once a cancel was asked for
//! <dir>/<job id>/4a4f4253-<seq>.ckpt      checkpoints: FileCheckpointStore, kernel id JOBS
//! <dir>/<job id>/.4a4f4253.lock           the lock of the service that runs the job
//! ```
//!
//! Every file but the checkpoints is written to a temporary file, `fsync`ed, renamed into
//! place and its directory `fsync`ed, so a crash leaves the old file or the new one. The
//! checkpoints are the tokio adapter's [`FileCheckpointStore`]: atomic writes, the newest
//! [`KEEP_CHECKPOINTS`] good ones kept, restore past damaged ones, and the lock that lets one
//! service of those sharing the directory run the job.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustkernel_tokio::checkpoint_store::{CheckpointStoreError, LoadedCheckpoint};
use rustkernel_tokio::resilience::FileCheckpointStore;

use super::record::{JobId, JobRecord};
use super::store::{ClaimError, JobCheckpoints, JobStore, JobStoreError, StoreFuture};
use crate::kernels::{BoxFuture, KernelRequest, KernelResponse};

/// The checkpoint store's kernel id of every job's checkpoints: ASCII `JOBS`.
pub const CHECKPOINT_KERNEL_ID: u32 = 0x4a4f_4253;
/// Good checkpoints kept per job: the newest, and the one before it for when the newest is
/// found damaged.
pub const KEEP_CHECKPOINTS: usize = 2;

const RECORD: &str = "job.json";
const INPUT: &str = "input.bin";
const RESULT: &str = "result.bin";
const CANCEL: &str = "cancel";

/// Jobs under a directory.
#[derive(Clone, Debug)]
pub struct DirJobStore {
    dir: PathBuf,
}

impl DirJobStore {
    /// The store under `dir`, created if missing.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, JobStoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .map_err(|error| JobStoreError::io(format!("create {}", dir.display()), error))?;
        Ok(Self { dir })
    }

    /// The jobs directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of job `id`.
    #[must_use]
    pub fn job_dir(&self, id: &JobId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    fn file(&self, id: &JobId, name: &str) -> PathBuf {
        self.job_dir(id).join(name)
    }

    /// Runs `work` on a blocking thread.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, JobStoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&store))
                .await
                .map_err(|error| {
                    JobStoreError::io("run the store's blocking task", io::Error::other(error))
                })?
        })
    }

    fn read_record(&self, id: &JobId) -> Result<Option<JobRecord>, JobStoreError> {
        let path = self.file(id, RECORD);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|error| JobStoreError::Corrupt {
                        what: path.display().to_string(),
                        message: error.to_string(),
                    })
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(JobStoreError::io(format!("read {}", path.display()), error)),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file: after a crash the file is the old one
/// or the new one, never a torn one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), JobStoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file");
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let what = || format!("write {}", path.display());
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path))
        .and_then(|()| fs::File::open(dir)?.sync_all());
    written.map_err(|error| {
        let _ = fs::remove_file(&temp);
        JobStoreError::io(what(), error)
    })
}

/// The bytes of the files under `dir`, two levels deep (the jobs directory's layout).
fn du(dir: &Path, depth: u32) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() && depth > 0 => du(&entry.path(), depth - 1),
            Ok(meta) if meta.is_file() => meta.len(),
            _ => 0,
        })
        .sum()
}

impl JobStore for DirJobStore {
    fn create<'a>(
        &'a self,
        record: &'a JobRecord,
        input: &'a KernelRequest,
    ) -> StoreFuture<'a, ()> {
        let record = record.clone();
        let input = postcard::to_allocvec(input);
        self.blocking(move |store| {
            let input = input.map_err(|error| JobStoreError::Corrupt {
                what: "the input".to_owned(),
                message: error.to_string(),
            })?;
            let dir = store.job_dir(&record.id);
            fs::create_dir_all(&dir)
                .map_err(|error| JobStoreError::io(format!("create {}", dir.display()), error))?;
            write_atomic(&dir.join(INPUT), &input)?;
            write_record(&dir, &record)
        })
    }

    fn write_record<'a>(&'a self, record: &'a JobRecord) -> StoreFuture<'a, ()> {
        let record = record.clone();
        self.blocking(move |store| write_record(&store.job_dir(&record.id), &record))
    }

    fn record<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, Option<JobRecord>> {
        let id = id.clone();
        self.blocking(move |store| store.read_record(&id))
    }

    fn records(&self) -> StoreFuture<'_, Vec<JobRecord>> {
        self.blocking(|store| {
            let entries = fs::read_dir(&store.dir).map_err(|error| {
                JobStoreError::io(format!("list {}", store.dir.display()), error)
            })?;
            let mut records = Vec::new();
            for entry in entries.flatten() {
                let Some(id) = entry.file_name().to_str().and_then(JobId::parse) else {
                    continue;
                };
                match store.read_record(&id) {
                    Ok(Some(record)) => records.push(record),
                    // Being created or removed.
                    Ok(None) => {}
                    Err(error) => tracing::warn!(job = %id, %error, "skipping a job"),
                }
            }
            records.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(records)
        })
    }

    fn input<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, KernelRequest> {
        let path = self.file(id, INPUT);
        self.blocking(move |_| {
            let bytes = fs::read(&path)
                .map_err(|error| JobStoreError::io(format!("read {}", path.display()), error))?;
            postcard::from_bytes(&bytes).map_err(|error| JobStoreError::Corrupt {
                what: path.display().to_string(),
                message: error.to_string(),
            })
        })
    }

    fn write_result<'a>(
        &'a self,
        id: &'a JobId,
        result: &'a KernelResponse,
    ) -> StoreFuture<'a, ()> {
        let path = self.file(id, RESULT);
        let bytes = postcard::to_allocvec(result);
        self.blocking(move |_| {
            let bytes = bytes.map_err(|error| JobStoreError::Corrupt {
                what: "the result".to_owned(),
                message: error.to_string(),
            })?;
            write_atomic(&path, &bytes)
        })
    }

    fn result<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, Option<KernelResponse>> {
        let path = self.file(id, RESULT);
        self.blocking(move |_| match fs::read(&path) {
            Ok(bytes) => {
                postcard::from_bytes(&bytes)
                    .map(Some)
                    .map_err(|error| JobStoreError::Corrupt {
                        what: path.display().to_string(),
                        message: error.to_string(),
                    })
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(JobStoreError::io(format!("read {}", path.display()), error)),
        })
    }

    fn request_cancel<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, ()> {
        let path = self.file(id, CANCEL);
        self.blocking(move |_| write_atomic(&path, b"cancel\n"))
    }

    fn cancel_requested<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, bool> {
        let path = self.file(id, CANCEL);
        self.blocking(move |_| Ok(path.exists()))
    }

    fn remove<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, ()> {
        let dir = self.job_dir(id);
        self.blocking(move |_| match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(JobStoreError::io(
                format!("remove {}", dir.display()),
                error,
            )),
        })
    }

    fn bytes_on_disk(&self) -> StoreFuture<'_, u64> {
        self.blocking(|store| Ok(du(&store.dir, 1)))
    }

    fn claim<'a>(
        &'a self,
        id: &'a JobId,
    ) -> BoxFuture<'a, Result<Arc<dyn JobCheckpoints>, ClaimError>> {
        let dir = self.job_dir(id);
        Box::pin(async move {
            if !dir.join(RECORD).exists() {
                return Err(ClaimError::Missing);
            }
            match FileCheckpointStore::open(dir, CHECKPOINT_KERNEL_ID, KEEP_CHECKPOINTS).await {
                Ok(store) => Ok(Arc::new(DirCheckpoints(store)) as Arc<dyn JobCheckpoints>),
                Err(CheckpointStoreError::Locked { .. }) => Err(ClaimError::Locked),
                Err(error) => Err(ClaimError::Store(error)),
            }
        })
    }
}

fn write_record(dir: &Path, record: &JobRecord) -> Result<(), JobStoreError> {
    let bytes = serde_json::to_vec_pretty(record).map_err(|error| JobStoreError::Corrupt {
        what: "the record".to_owned(),
        message: error.to_string(),
    })?;
    write_atomic(&dir.join(RECORD), &bytes)
}

/// A claimed job's checkpoints: the tokio adapter's store, holding the job's lock.
#[derive(Debug)]
struct DirCheckpoints(FileCheckpointStore);

impl JobCheckpoints for DirCheckpoints {
    fn save(
        &self,
        sequence: u64,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<u64, CheckpointStoreError>> {
        Box::pin(async move {
            self.0.save(sequence, payload.as_slice()).await?;
            let path = self.0.path_of(sequence);
            Ok(tokio::fs::metadata(path).await.map_or(0, |meta| meta.len()))
        })
    }

    fn load_latest(
        &self,
    ) -> BoxFuture<'_, Result<Option<LoadedCheckpoint<Vec<u8>>>, CheckpointStoreError>> {
        Box::pin(self.0.load_latest::<Vec<u8>>())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)] // tests index what they wrote

    use std::time::SystemTime;

    use super::*;
    use crate::kernels::{self, CheckpointEvery};

    fn record(id: &str) -> JobRecord {
        JobRecord::queued(
            JobId::parse(id).expect("an id"),
            kernels::PAGERANK,
            SystemTime::now(),
            None,
            CheckpointEvery::iterations(1),
            10,
        )
    }

    #[tokio::test]
    async fn jobs_round_trip_and_checkpoints_fall_back_past_a_flipped_byte() {
        let temp = tempfile::tempdir().expect("a temp dir");
        let store = DirJobStore::open(temp.path().join("jobs")).expect("opens");
        let input =
            kernels::parse_request(kernels::PAGERANK, br#"{"num_nodes": 2, "edges": [[0, 1]]}"#)
                .expect("valid");
        let (a, b) = (record("0a"), record("0b"));
        store.create(&b, &input).await.expect("created");
        store.create(&a, &input).await.expect("created");
        assert_eq!(
            store.records().await.expect("lists"),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(store.input(&a.id).await.expect("reads"), input);
        assert_eq!(
            store
                .record(&JobId::parse("0c").expect("id"))
                .await
                .expect("reads"),
            None
        );
        assert!(!store.cancel_requested(&a.id).await.expect("reads"));
        store.request_cancel(&a.id).await.expect("marks");
        assert!(store.cancel_requested(&a.id).await.expect("reads"));

        let checkpoints = store.claim(&a.id).await.expect("claims");
        for byte in 1..=3u8 {
            let bytes = checkpoints
                .save(u64::from(byte), vec![byte; 4])
                .await
                .expect("saves");
            assert_eq!(bytes, 25 + 1 + 4, "header, length, payload");
        }
        let newest = store
            .job_dir(&a.id)
            .join(FileCheckpointStore::file_name(CHECKPOINT_KERNEL_ID, 3));
        let mut bytes = fs::read(&newest).expect("reads");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&newest, bytes).expect("writes");
        let loaded = checkpoints
            .load_latest()
            .await
            .expect("loads")
            .expect("some");
        assert_eq!((loaded.sequence, loaded.value), (2, vec![2u8; 4]));
        assert_eq!(loaded.skipped.len(), 1);
        assert!(store.bytes_on_disk().await.expect("counts") > 0);

        assert!(matches!(
            store.claim(&JobId::parse("0c").expect("id")).await,
            Err(ClaimError::Missing)
        ));
        drop(checkpoints);
        store.remove(&a.id).await.expect("removes");
        store.remove(&a.id).await.expect("removing twice is fine");
        assert_eq!(store.records().await.expect("lists"), vec![b]);
    }
}
