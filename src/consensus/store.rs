//! openraft storage on disk: the log, the vote and the snapshot, in the
//! daemon's data directory.
//!
//! Files (all under `<data-dir>/raft/`):
//! - `log`: append-only records `[len u32 LE][crc32 u32 LE][entry as JSON]`.
//!   Appends are fsynced before openraft is told they are durable; truncation
//!   cuts the file at a record boundary and fsyncs.
//! - `meta`: vote, committed log id and last purged log id, rewritten whole
//!   (temp file, fsync, rename, fsync dir) on every change.
//! - `snapshot`: the last snapshot (meta + serialized state), written the same way.
//! - `identity`: this daemon's node id and its group's cluster id, written the
//!   same way when the directory is created, and again once when the group is
//!   bootstrapped or joined (the cluster id never changes after that).
//!
//! Directories written before `identity` existed are converted at open: the
//! node id those releases used (the first 16 hex digits of the myid) is kept,
//! and the cluster id is the one they computed (see `IdentitySeed`).
//!
//! Every file carries checksums. At open, a record whose checksum does not
//! match, or a meta/snapshot file that fails its checksum, is an error: the
//! daemon refuses to start rather than replay damaged history. The one case
//! repaired silently-but-loudly is a torn final record (a crash in the middle of
//! an append): that append was never acknowledged, so it is cut off with a warning.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use super::TypeConfig;
use crate::core::group::{CommandResponse, GroupState};

type NodeId = u64;
type Node = crate::core::group::Member;
type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// Why the stored Raft state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: in use by another process (each daemon needs its own raft data directory)")]
    Locked(PathBuf),
    #[error("{path}: corrupt at byte {offset}: {reason}; refusing to replay a damaged Raft log")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "{path}: this raft data belongs to cluster {stored:?}, but the configuration names \
         {configured:?}; a group's cluster id never changes (use another data directory to \
         start a new group)"
    )]
    ClusterIdConflict {
        path: PathBuf,
        stored: String,
        configured: String,
    },
}

/// This daemon's identity in its group, persisted with its Raft data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: NodeId,
    /// None until the group is bootstrapped or joined.
    pub cluster_id: Option<String>,
}

/// What `open` needs to give a directory its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySeed {
    /// The node id of a new incarnation (random, never 0).
    pub fresh_node_id: NodeId,
    /// `[raft] cluster-id` / `RAFTINEL_CLUSTER_ID`, when given.
    pub configured_cluster_id: Option<String>,
    /// For a directory of an earlier release: the node id it used.
    pub legacy_node_id: NodeId,
    /// For a directory of an earlier release: the cluster id it used (when
    /// none is configured, derived from the monitored master names).
    pub legacy_cluster_id: String,
}

impl IdentitySeed {
    /// The seed of a new directory that is to be node `id` (tests, tools).
    pub fn fresh(id: NodeId, cluster_id: Option<String>) -> IdentitySeed {
        IdentitySeed {
            fresh_node_id: id,
            configured_cluster_id: cluster_id,
            legacy_node_id: id,
            legacy_cluster_id: String::new(),
        }
    }
}

/// How the identity was obtained (reported once by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdentityOrigin {
    /// Read back as persisted.
    #[default]
    Stored,
    /// A new directory (or one whose Raft data is empty and that belonged
    /// to no group): a new node id.
    New,
    /// The Raft data of a directory that belonged to a group is empty (lost
    /// or wiped): a new node id in that group. Such a node only joins; it
    /// never bootstraps a second group under the same cluster id.
    Emptied,
    /// A directory of an earlier release, converted.
    Converted,
}

/// What `open` noticed and repaired (reported by the caller, once).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of a torn, never-acknowledged final record that were cut off.
    pub torn_tail_bytes: u64,
    /// Nothing was stored before: no log entry, no vote, no snapshot.
    pub was_empty: bool,
    pub identity: Option<Identity>,
    pub identity_origin: IdentityOrigin,
    /// The log index known committed when the directory was opened: the
    /// state is loaded once the node has applied up to it.
    pub committed_index: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    data: Vec<u8>,
}

/// The state machine's content as a snapshot carries it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SmImage {
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, Node>,
    state: GroupState,
}

struct LogInner {
    dir: PathBuf,
    /// Held for the life of the store: an exclusive lock on `<dir>/LOCK`.
    _lock: File,
    /// The log file, apart from the index so that a write holds only the
    /// file while it syncs, never what readers need.
    file: Arc<Mutex<File>>,
    /// index -> (entry, byte offset of its record)
    entries: Entries,
    end: u64,
    meta: Meta,
}

/// openraft's log storage (log + vote). Cheap to clone: readers share it.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    meta_io: Arc<MetaIo>,
    writer: Arc<LogWriter>,
}

/// Appends waiting to be written, shared by the store and the jobs that
/// write them.
#[derive(Default)]
struct LogWriter {
    /// Appended batches not written yet, in the order `append` took them.
    queue: Mutex<VecDeque<Pending>>,
    /// The first write error: every later append fails with it (openraft
    /// stops the node on a failed flush).
    failed: Mutex<Option<String>>,
}

/// One appended batch: its records start at byte `start` of the log.
struct Pending {
    start: u64,
    bytes: Vec<u8>,
    done: LogFlushed<TypeConfig>,
}

impl LogWriter {
    /// Writes and fsyncs every queued batch, in order, and tells openraft
    /// about each. Runs on the blocking pool: an append costs an fsync
    /// (milliseconds, far more on a busy disk), and done in `append` it held
    /// an async worker, and every client it served, that long. openraft's
    /// storage API needs only the entries readable when `append` returns
    /// and the callback once they are durable. Batches are taken off the
    /// queue only with the file held, so whichever job runs first writes
    /// them all in order; the others find nothing left.
    fn drain(&self, file: &Mutex<File>) {
        let mut f = lock(file);
        loop {
            let Some(p) = lock(&self.queue).pop_front() else {
                return;
            };
            let failed = lock(&self.failed).clone();
            let res = match failed {
                Some(e) => Err(io::Error::other(e)),
                None => {
                    let r = if crate::failpoint::hit("raft-log-write") {
                        Err(io::Error::other("failpoint raft-log-write"))
                    } else {
                        f.write_all(&p.bytes).and_then(|()| f.sync_data())
                    };
                    if let Err(e) = &r {
                        // Leave the file as it was: cut whatever part of the
                        // batch landed.
                        let _ = f.set_len(p.start);
                        *lock(&self.failed) = Some(e.to_string());
                    }
                    r
                }
            };
            p.done.log_io_completed(res);
        }
    }
}

/// Serializes rewrites of `meta` and lets the committed id be written off the
/// Raft core's path. A crash-safe rewrite costs two fsyncs (tens of ms on
/// ordinary disks); done inline for every commit it capped commits at a few
/// dozen per second and stalled a runtime worker each time, so heartbeats were
/// late and elections churned under load. The committed id is only a lower
/// bound used at restart (a stale one just means replaying less until the
/// leader says more), so it may lag; the vote is still durable before
/// `save_vote` returns.
#[derive(Default)]
struct MetaIo {
    /// Held for each write; the meta written is read under it, so a later
    /// write never carries older content than an earlier one.
    io: Mutex<()>,
    /// The committed id changed since the last background write.
    dirty: std::sync::atomic::AtomicBool,
    /// A background writer is running.
    running: std::sync::atomic::AtomicBool,
}

/// openraft's state machine storage: the applied `GroupState` plus snapshots.
pub struct StateMachineStore {
    dir: PathBuf,
    image: SmImage,
    /// The last snapshot, shared with builders so a build becomes current.
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    /// Where the applied state is published for the rest of the daemon.
    published: Published,
}

fn io_err(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write(&io::Error::other(e.to_string())).into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock would already have stopped the daemon's
    // storage task; take the data anyway rather than cascade.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes `bytes` to `path` crash-safely: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// `<crc32 hex>\n<json>`: small files verified as a whole.
fn seal(json: Vec<u8>) -> Vec<u8> {
    let mut out = format!("{:08x}\n", crc32fast::hash(&json)).into_bytes();
    out.extend_from_slice(&json);
    out
}

fn unseal(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, OpenError> {
    let corrupt = |reason: &str| OpenError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("missing checksum line"))?;
    let want = std::str::from_utf8(&bytes[..nl])
        .ok()
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or_else(|| corrupt("bad checksum line"))?;
    let body = &bytes[nl + 1..];
    if crc32fast::hash(body) != want {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(body.to_vec())
}

fn read_sealed<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, OpenError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(OpenError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let body = unseal(path, &bytes)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| OpenError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: e.to_string(),
        })
}

/// Takes an exclusive, non-blocking lock on `<dir>/LOCK`, so two daemons can
/// never write the same Raft log (the lock ends with the process).
fn lock_dir(dir: &Path) -> Result<File, OpenError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| OpenError::Io {
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(OpenError::Locked(dir.to_path_buf()));
    }
    Ok(file)
}

fn encode_record(entry: &Entry<TypeConfig>) -> Vec<u8> {
    // Serializing our own types to JSON cannot fail (no maps with non-string keys).
    let json = serde_json::to_vec(entry).unwrap_or_default();
    let mut rec = Vec::with_capacity(json.len() + 8);
    rec.extend_from_slice(&(json.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    rec.extend_from_slice(&json);
    rec
}

/// The applied state, as the rest of the daemon watches it.
pub type Published = Arc<tokio::sync::watch::Sender<GroupState>>;

/// Writes the identity file of the storage in `<data_dir>/raft`.
pub fn save_identity(data_dir: &Path, identity: &Identity) -> io::Result<()> {
    let json = serde_json::to_vec(identity).map_err(io::Error::other)?;
    write_atomic(&data_dir.join("raft").join("identity"), &seal(json))
}

/// The identity of an opened directory (see the module's comment).
fn identity_of(
    dir: &Path,
    stored: Option<Identity>,
    was_empty: bool,
    seed: &IdentitySeed,
) -> Result<(Identity, IdentityOrigin), OpenError> {
    let configured = seed.configured_cluster_id.clone();
    let (identity, origin) = match stored {
        // Nothing to lose: a new incarnation, in the group it belonged to
        // (unless the configuration now names another one).
        Some(old) if was_empty => {
            let same =
                old.cluster_id.is_some() && (configured.is_none() || configured == old.cluster_id);
            (
                Identity {
                    node_id: seed.fresh_node_id,
                    cluster_id: configured.or(old.cluster_id),
                },
                if same {
                    IdentityOrigin::Emptied
                } else {
                    IdentityOrigin::New
                },
            )
        }
        Some(old) => {
            if let (Some(stored), Some(configured)) = (&old.cluster_id, &configured) {
                if stored != configured {
                    return Err(OpenError::ClusterIdConflict {
                        path: dir.join("identity"),
                        stored: stored.clone(),
                        configured: configured.clone(),
                    });
                }
            }
            (old, IdentityOrigin::Stored)
        }
        None if was_empty => (
            Identity {
                node_id: seed.fresh_node_id,
                cluster_id: configured,
            },
            IdentityOrigin::New,
        ),
        None => (
            Identity {
                node_id: seed.legacy_node_id,
                cluster_id: Some(configured.unwrap_or_else(|| seed.legacy_cluster_id.clone())),
            },
            IdentityOrigin::Converted,
        ),
    };
    Ok((identity, origin))
}

/// The log's entries by index, each with its record's offset in the file.
type Entries = BTreeMap<u64, (Entry<TypeConfig>, u64)>;

/// The log file's records, by index with their offsets, and where the last
/// whole record ends: a torn tail (a record cut by a crash) is measured in
/// `report` and left for the caller to cut off; a checksum or decoding error
/// is corruption.
fn read_records(
    bytes: &[u8],
    log_path: &Path,
    report: &mut OpenReport,
) -> Result<(Entries, usize), OpenError> {
    let mut entries = BTreeMap::new();
    let mut off = 0usize;
    while off < bytes.len() {
        let rest = &bytes[off..];
        let torn = rest.len() < 8 || {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest.len() < 8 + len
        };
        if torn {
            report.torn_tail_bytes = rest.len() as u64;
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let body = &rest[8..8 + len];
        let corrupt = |reason: String| OpenError::Corrupt {
            path: log_path.to_path_buf(),
            offset: off as u64,
            reason,
        };
        if crc32fast::hash(body) != crc {
            return Err(corrupt("record checksum mismatch".into()));
        }
        let entry: Entry<TypeConfig> =
            serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
        entries.insert(entry.log_id.index, (entry, off as u64));
        off += 8 + len;
    }
    Ok((entries, off))
}

/// Opens (or creates) the storage in `<data_dir>/raft`. `published` receives
/// the applied state after every apply and snapshot install. `seed` gives the
/// directory its identity when it has none (or holds no Raft data).
pub fn open(
    data_dir: &Path,
    published: Published,
    seed: &IdentitySeed,
) -> Result<(LogStore, StateMachineStore, OpenReport), OpenError> {
    let dir = data_dir.join("raft");
    let ioe = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OpenError::Io { path, source }
    };
    fs::create_dir_all(&dir).map_err(ioe(&dir))?;
    let lock = lock_dir(&dir)?;
    let log_path = dir.join("log");
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&log_path)
        .map_err(ioe(&log_path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(ioe(&log_path))?;

    let mut report = OpenReport::default();
    let (entries, off) = read_records(&bytes, &log_path, &mut report)?;
    if report.torn_tail_bytes > 0 {
        file.set_len(off as u64).map_err(ioe(&log_path))?;
        file.sync_all().map_err(ioe(&log_path))?;
    }
    let meta: Meta = read_sealed(&dir.join("meta"))?.unwrap_or_default();
    let snapshot: Option<StoredSnapshot> = read_sealed(&dir.join("snapshot"))?;
    report.was_empty = entries.is_empty() && meta.vote.is_none() && snapshot.is_none();
    report.committed_index = meta.committed.map(|c| c.index);
    let identity_path = dir.join("identity");
    let stored: Option<Identity> = read_sealed(&identity_path)?;
    let (identity, origin) = identity_of(&dir, stored.clone(), report.was_empty, seed)?;
    if stored.as_ref() != Some(&identity) {
        save_identity(data_dir, &identity).map_err(ioe(&identity_path))?;
    }
    report.identity = Some(identity);
    report.identity_origin = origin;
    let mut image = match &snapshot {
        Some(s) => serde_json::from_slice::<SmImage>(&s.data).map_err(|e| OpenError::Corrupt {
            path: dir.join("snapshot"),
            offset: 0,
            reason: e.to_string(),
        })?,
        None => SmImage::default(),
    };
    // Snapshots of earlier releases carry no voters in the state: take them
    // from the snapshot's membership.
    if image.state.voters.is_empty() {
        image
            .state
            .apply_membership(voters_of(image.last_membership.membership()));
    }
    published.send_replace(image.state.clone());
    let file = Arc::new(Mutex::new(file));
    let log = LogStore {
        meta_io: Arc::default(),
        writer: Arc::default(),
        inner: Arc::new(Mutex::new(LogInner {
            dir: dir.clone(),
            _lock: lock,
            file,
            entries,
            end: off as u64,
            meta,
        })),
    };
    let sm = StateMachineStore {
        dir,
        image,
        current: Arc::new(Mutex::new(snapshot)),
        published,
    };
    Ok((log, sm, report))
}

impl LogInner {
    /// Rewrites the log file with the current entries (after a purge).
    fn rewrite_log(&mut self) -> io::Result<()> {
        let path = self.dir.join("log");
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for (idx, (entry, _)) in &self.entries {
            offsets.push((*idx, bytes.len() as u64));
            bytes.extend_from_slice(&encode_record(entry));
        }
        write_atomic(&path, &bytes)?;
        for (idx, off) in offsets {
            if let Some(e) = self.entries.get_mut(&idx) {
                e.1 = off;
            }
        }
        self.end = bytes.len() as u64;
        *lock(&self.file) = OpenOptions::new().read(true).append(true).open(&path)?;
        Ok(())
    }
}

impl LogStore {
    /// Waits until every append made so far is on disk (or failed).
    async fn written(&self) -> StorageResult<()> {
        let (writer, file) = (self.writer.clone(), lock(&self.inner).file.clone());
        tokio::task::spawn_blocking(move || writer.drain(&file))
            .await
            .map_err(io_err)
    }

    /// Writes the current meta crash-safely. Never called with `inner` held
    /// (the background writer takes `io` first, then `inner`).
    fn persist_meta(&self) -> io::Result<()> {
        let _io = lock(&self.meta_io.io);
        let (dir, meta) = {
            let inner = lock(&self.inner);
            (inner.dir.clone(), inner.meta.clone())
        };
        let json = serde_json::to_vec(&meta).map_err(io::Error::other)?;
        write_atomic(&dir.join("meta"), &seal(json))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let inner = lock(&self.inner);
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let inner = lock(&self.inner);
        let last_purged_log_id = inner.meta.last_purged;
        let last_log_id = inner
            .entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        lock(&self.inner).meta.vote = Some(*vote);
        self.persist_meta()
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        Ok(lock(&self.inner).meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        use std::sync::atomic::Ordering::SeqCst;
        lock(&self.inner).meta.committed = committed;
        self.meta_io.dirty.store(true, SeqCst);
        if !self.meta_io.running.swap(true, SeqCst) {
            let store = self.clone();
            tokio::task::spawn_blocking(move || loop {
                while store.meta_io.dirty.swap(false, SeqCst) {
                    if let Err(e) = store.persist_meta() {
                        tracing::warn!("raft: saving the committed log id: {e}");
                    }
                }
                store.meta_io.running.store(false, SeqCst);
                // A change that arrived after the last write but before
                // `running` was cleared would otherwise wait for the next one.
                if !store.meta_io.dirty.load(SeqCst) || store.meta_io.running.swap(true, SeqCst) {
                    break;
                }
            });
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(lock(&self.inner).meta.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = lock(&self.inner);
        let start = inner.end;
        let mut buf = Vec::new();
        for entry in entries {
            let off = start + buf.len() as u64;
            buf.extend_from_slice(&encode_record(&entry));
            inner.entries.insert(entry.log_id.index, (entry, off));
        }
        inner.end += buf.len() as u64;
        let file = inner.file.clone();
        drop(inner);
        // Readable now, durable when the write calls back (`LogWriter::drain`).
        lock(&self.writer.queue).push_back(Pending {
            start,
            bytes: buf,
            done: callback,
        });
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || writer.drain(&file));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        // Appends still being written land before the cut.
        self.written().await?;
        let mut inner = lock(&self.inner);
        let Some(off) = inner.entries.get(&log_id.index).map(|(_, off)| *off) else {
            return Ok(());
        };
        {
            let f = lock(&inner.file);
            f.set_len(off).map_err(io_err)?;
            f.sync_all().map_err(io_err)?;
        }
        inner.end = off;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        // The rewrite below replaces the file: appends in flight go first.
        self.written().await?;
        // Record the purge first: if we crash before the rewrite, the log just
        // keeps entries that are already covered by a snapshot.
        lock(&self.inner).meta.last_purged = Some(log_id);
        self.persist_meta().map_err(io_err)?;
        let mut inner = lock(&self.inner);
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        inner.rewrite_log().map_err(io_err)
    }
}

/// The voters of a membership (both configurations of a joint one) with
/// their node data.
fn voters_of(m: &openraft::Membership<NodeId, Node>) -> BTreeMap<NodeId, Node> {
    m.voter_ids()
        .map(|id| (id, m.get_node(&id).cloned().unwrap_or_default()))
        .collect()
}

impl StateMachineStore {
    fn publish(&self) {
        self.published.send_replace(self.image.state.clone());
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>)> {
        Ok((self.image.last_applied, self.image.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<CommandResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.image.last_applied = Some(entry.log_id);
            let resp = match &entry.payload {
                EntryPayload::Blank => CommandResponse::Applied,
                EntryPayload::Normal(cmd) => self.image.state.apply(cmd),
                EntryPayload::Membership(m) => {
                    self.image.state.apply_membership(voters_of(m));
                    self.image.last_membership =
                        StoredMembership::new(Some(entry.log_id), m.clone());
                    CommandResponse::Applied
                }
            };
            out.push(resp);
        }
        self.publish();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachineBuilder {
            dir: self.dir.clone(),
            image: self.image.clone(),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let image: SmImage = serde_json::from_slice(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(Some(meta.signature()), &e))
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        save_snapshot(&self.dir, &stored).map_err(io_err)?;
        let mut state = image.state;
        if state.voters.is_empty() {
            state.apply_membership(voters_of(meta.last_membership.membership()));
        }
        self.image = SmImage {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            state,
        };
        *lock(&self.current) = Some(stored);
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        Ok(lock(&self.current).as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked.
pub struct StateMachineBuilder {
    dir: PathBuf,
    image: SmImage,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

fn save_snapshot(dir: &Path, snap: &StoredSnapshot) -> io::Result<()> {
    let json = serde_json::to_vec(snap).map_err(io::Error::other)?;
    write_atomic(&dir.join("snapshot"), &seal(json))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let data = serde_json::to_vec(&self.image).map_err(io_err)?;
        let snapshot_id = match self.image.last_applied {
            Some(l) => format!("{}-{}", l.leader_id, l.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.image.last_applied,
            last_membership: self.image.last_membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        save_snapshot(&self.dir, &stored).map_err(io_err)?;
        *lock(&self.current) = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

#[cfg(test)]
pub(crate) fn seed(cluster: Option<&str>) -> IdentitySeed {
    IdentitySeed {
        fresh_node_id: 7,
        configured_cluster_id: cluster.map(str::to_string),
        legacy_node_id: 0x5555,
        legacy_cluster_id: "raftinel:m".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{StoreBuilder, Suite};

    struct DiskBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for DiskBuilder {
        async fn build(&self) -> StorageResult<(tempfile::TempDir, LogStore, StateMachineStore)> {
            let dir = tempfile::tempdir().map_err(io_err)?;
            let (log, sm, _) = open(
                dir.path(),
                Arc::new(tokio::sync::watch::channel(GroupState::default()).0),
                &seed(None),
            )
            .map_err(io_err)?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for log and state-machine storage.
    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(DiskBuilder).expect("storage suite");
    }
}

#[cfg(test)]
mod disk_tests {
    use super::seed;
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::core::group::Command::Remove {
                name: format!("m{index}"),
            }),
        }
    }

    fn reopen(dir: &Path) -> Result<(LogStore, StateMachineStore, OpenReport), OpenError> {
        reopen_with(dir, &seed(None))
    }

    fn reopen_with(
        dir: &Path,
        seed: &IdentitySeed,
    ) -> Result<(LogStore, StateMachineStore, OpenReport), OpenError> {
        open(
            dir,
            Arc::new(tokio::sync::watch::channel(GroupState::default()).0),
            seed,
        )
    }

    /// Writes entries straight through the append path's record format.
    fn write_entries(dir: &Path, n: u64) {
        let path = dir.join("raft");
        fs::create_dir_all(&path).unwrap();
        let mut bytes = Vec::new();
        for i in 1..=n {
            bytes.extend_from_slice(&encode_record(&entry(i)));
        }
        fs::write(path.join("log"), bytes).unwrap();
    }

    #[tokio::test]
    async fn log_and_vote_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 3);
        let (mut log, _, report) = reopen(dir.path()).unwrap();
        assert_eq!(report.torn_tail_bytes, 0);
        assert!(!report.was_empty);
        log.save_vote(&Vote::new(7, 2)).await.unwrap();
        drop(log);
        let (mut log, _, _) = reopen(dir.path()).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(7, 2)));
        let entries = log.try_get_log_entries(1..4).await.unwrap();
        assert_eq!(entries.len(), 3);
    }

    #[test]
    fn a_flipped_byte_in_a_record_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 3);
        let path = dir.path().join("raft/log");
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
        fs::write(&path, bytes).unwrap();
        match reopen(dir.path()) {
            Err(OpenError::Corrupt { reason, .. }) => {
                assert!(reason.contains("checksum"), "{reason}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a corrupt log was opened"),
        }
    }

    #[tokio::test]
    async fn a_torn_final_record_is_cut_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 3);
        let path = dir.path().join("raft/log");
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() - 5]).unwrap();
        let (mut log, _, report) = reopen(dir.path()).unwrap();
        assert!(report.torn_tail_bytes > 0);
        let entries = log.try_get_log_entries(1..10).await.unwrap();
        assert_eq!(entries.len(), 2, "only whole, verified records are kept");
    }

    #[test]
    fn a_second_opener_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = reopen(dir.path()).unwrap();
        assert!(matches!(reopen(dir.path()), Err(OpenError::Locked(_))));
        drop(first);
        assert!(reopen(dir.path()).is_ok());
    }

    #[test]
    fn a_damaged_meta_file_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 1);
        let meta = dir.path().join("raft/meta");
        fs::write(
            &meta,
            seal(br#"{"vote":null,"committed":null,"last_purged":null}"#.to_vec()),
        )
        .unwrap();
        assert!(reopen(dir.path()).is_ok());
        let mut bytes = fs::read(&meta).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&meta, bytes).unwrap();
        assert!(matches!(reopen(dir.path()), Err(OpenError::Corrupt { .. })));
    }

    #[test]
    fn the_identity_is_created_kept_and_never_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let (.., r) = reopen_with(dir.path(), &seed(None)).unwrap();
        assert_eq!(r.identity_origin, IdentityOrigin::New);
        let id = r.identity.unwrap();
        assert_eq!((id.node_id, id.cluster_id.as_deref()), (7, None));
        // Bootstrapped: the cluster id is written once.
        let named = Identity {
            node_id: 7,
            cluster_id: Some("c1".into()),
        };
        save_identity(dir.path(), &named).unwrap();
        write_entries(dir.path(), 1);
        let mut other = seed(None);
        other.fresh_node_id = 8;
        other.legacy_cluster_id = "raftinel:m,n".into();
        let (.., r) = reopen_with(dir.path(), &other).unwrap();
        assert_eq!(r.identity_origin, IdentityOrigin::Stored);
        assert_eq!(r.identity, Some(named.clone()), "a restart changes nothing");
        // The configuration cannot rename a group that holds data.
        match reopen_with(dir.path(), &seed(Some("c2"))) {
            Err(OpenError::ClusterIdConflict {
                stored, configured, ..
            }) => {
                assert_eq!((stored.as_str(), configured.as_str()), ("c1", "c2"))
            }
            other => panic!("expected a conflict, got {:?}", other.err()),
        }
        assert!(reopen_with(dir.path(), &seed(Some("c1"))).is_ok());
    }

    #[test]
    fn emptied_raft_data_comes_back_as_a_new_incarnation_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        reopen(dir.path()).unwrap();
        save_identity(
            dir.path(),
            &Identity {
                node_id: 3,
                cluster_id: Some("c1".into()),
            },
        )
        .unwrap();
        let (.., r) = reopen(dir.path()).unwrap();
        assert_eq!(r.identity_origin, IdentityOrigin::Emptied);
        assert_eq!(
            r.identity,
            Some(Identity {
                node_id: 7,
                cluster_id: Some("c1".into())
            })
        );
    }

    #[test]
    fn a_directory_of_an_earlier_release_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        write_entries(dir.path(), 2);
        let (.., r) = reopen(dir.path()).unwrap();
        assert_eq!(r.identity_origin, IdentityOrigin::Converted);
        assert_eq!(
            r.identity,
            Some(Identity {
                node_id: 0x5555,
                cluster_id: Some("raftinel:m".into())
            })
        );
        assert!(dir.path().join("raft/identity").exists());
        let (.., r) = reopen(dir.path()).unwrap();
        assert_eq!(r.identity_origin, IdentityOrigin::Stored);
    }
}
