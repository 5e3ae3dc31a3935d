//! An in-memory [`Fs`] that models what survives a crash, with fault
//! injection, in the spirit of SQLite's crash VFS and RocksDB's
//! `FaultInjectionTestFS`.
//!
//! Each file remembers its contents as of its last `sync`, and each directory
//! its entries as of its last `sync_dir`. After a simulated crash,
//! [`SimFs::materialize`] writes out what a real disk could hold: by default
//! only synced data and synced directory entries, or a random mix of synced
//! and unsynced state per file and directory.
//!
//! Every trait call counts as one operation, so a test can fail exactly the
//! Nth one ([`Fault::FailOp`]) or crash at the Nth sync ([`Fault::CrashAtSync`]).
//!
//! One file on purpose: the model's state, the `Fs` implementation that
//! changes it and the crash materialization that reads it share private
//! types and are checked against each other when read.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{DirEntry, EntryKind, Fs, FsFile, LockGuard, Stat};

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing fails.
    None,
    /// Operation `n` (1-based, counted from the last counter reset) fails
    /// with `EIO`; with `persistent`, every later operation fails too.
    FailOp {
        /// Which operation.
        n: u64,
        /// Whether every later operation fails too.
        persistent: bool,
    },
    /// Sync `n` (file or directory, 1-based) does not happen: the machine
    /// "crashes" there and every later operation fails.
    CrashAtSync {
        /// Which sync.
        n: u64,
    },
}

/// Which state [`SimFs::materialize`] writes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Everything as the running program sees it.
    Current,
    /// Only what was synced: unsynced writes and directory entries are lost.
    Durable,
    /// Each unsynced file and directory independently keeps either its
    /// synced or its current state, chosen by a seeded generator.
    Mixed {
        /// Seeds the choices.
        seed: u64,
    },
}

#[derive(Clone, Debug)]
enum Node {
    File { data: Vec<u8>, durable: Vec<u8> },
    Dir { entries: BTreeMap<String, usize>, durable: BTreeMap<String, usize> },
}

#[derive(Clone, Debug)]
struct State {
    nodes: Vec<Node>,
    ops: u64,
    syncs: u64,
    fault: Fault,
    crashed: bool,
    trace: Vec<String>,
}

const ROOT: usize = 0;

/// The simulated filesystem. Paths must lie under the prefix given to
/// [`SimFs::new`], which names its root directory.
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
    prefix: PathBuf,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(what.to_string())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} does not exist", path.display()))
}

impl SimFs {
    /// A simulated filesystem holding the paths under `prefix`.
    pub fn new(prefix: impl Into<PathBuf>) -> SimFs {
        let root = Node::Dir { entries: BTreeMap::new(), durable: BTreeMap::new() };
        let state = State { nodes: vec![root], ops: 0, syncs: 0, fault: Fault::None, crashed: false, trace: vec![] };
        SimFs { state: Arc::new(Mutex::new(state)), prefix: prefix.into() }
    }

    /// An independent deep copy (same contents, same durability, no fault).
    pub fn fork(&self) -> SimFs {
        let mut state = self.lock_state().clone();
        state.fault = Fault::None;
        state.crashed = false;
        SimFs { state: Arc::new(Mutex::new(state)), prefix: self.prefix.clone() }
    }

    /// Arm a fault and reset the operation and sync counters.
    pub fn set_fault(&self, fault: Fault) {
        let mut s = self.lock_state();
        s.fault = fault;
        s.ops = 0;
        s.syncs = 0;
        s.trace.clear();
    }

    /// Operations and syncs since the last [`SimFs::set_fault`].
    pub fn counters(&self) -> (u64, u64) {
        let s = self.lock_state();
        (s.ops, s.syncs)
    }

    /// Whether the simulated machine has crashed.
    pub fn crashed(&self) -> bool {
        self.lock_state().crashed
    }

    /// The operations performed since the last reset, for test diagnostics.
    pub fn trace(&self) -> Vec<String> {
        self.lock_state().trace.clone()
    }

    /// Write the simulated tree, as `view` selects, into the real directory
    /// `dest` (which must exist and be empty).
    pub fn materialize(&self, view: View, dest: &Path) -> io::Result<()> {
        let s = self.lock_state();
        let mut rng = match view {
            View::Mixed { seed } => Some(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            _ => None,
        };
        let mut written: BTreeMap<usize, PathBuf> = BTreeMap::new();
        materialize_dir(&s.nodes, ROOT, view, &mut rng, dest, &mut written)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count one operation and apply the armed fault to it.
    fn begin(&self, what: &str, path: &Path, is_sync: bool) -> io::Result<MutexGuard<'_, State>> {
        let mut s = self.lock_state();
        if s.crashed {
            return Err(eio("simulated machine has crashed"));
        }
        s.ops += 1;
        if is_sync {
            s.syncs += 1;
        }
        let (ops, syncs) = (s.ops, s.syncs);
        s.trace.push(format!("#{ops} {what} {}", path.display()));
        match s.fault {
            Fault::FailOp { n, persistent } if ops == n || (persistent && ops > n) => {
                Err(eio(&format!("injected fault at operation {ops} ({what})")))
            }
            Fault::CrashAtSync { n } if is_sync && syncs == n => {
                s.crashed = true;
                Err(eio(&format!("simulated crash at sync {syncs} ({what})")))
            }
            _ => Ok(s),
        }
    }

    fn components(&self, path: &Path) -> io::Result<Vec<String>> {
        let rel = path.strip_prefix(&self.prefix).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{} is outside the simulated fs", path.display()))
        })?;
        rel.components()
            .map(|c| match c {
                Component::Normal(name) => Ok(name.to_string_lossy().into_owned()),
                _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unsupported path {}", path.display()))),
            })
            .collect()
    }
}

impl State {
    fn lookup(&self, names: &[String], path: &Path) -> io::Result<usize> {
        let mut node = ROOT;
        for name in names {
            match &self.nodes[node] {
                Node::Dir { entries, .. } => node = *entries.get(name).ok_or_else(|| not_found(path))?,
                Node::File { .. } => {
                    return Err(io::Error::new(io::ErrorKind::NotADirectory, path.display().to_string()));
                }
            }
        }
        Ok(node)
    }

    /// The parent directory's node and the final name.
    fn parent<'n>(&self, names: &'n [String], path: &Path) -> io::Result<(usize, &'n str)> {
        let (name, dirs) = names.split_last().ok_or_else(|| eio("operation on the root"))?;
        let dir = self.lookup(dirs, path)?;
        match self.nodes[dir] {
            Node::Dir { .. } => Ok((dir, name)),
            Node::File { .. } => Err(io::Error::new(io::ErrorKind::NotADirectory, path.display().to_string())),
        }
    }

    fn entries_mut(&mut self, dir: usize) -> &mut BTreeMap<String, usize> {
        match &mut self.nodes[dir] {
            Node::Dir { entries, .. } => entries,
            Node::File { .. } => unreachable!("parent() only returns directories"),
        }
    }

    /// Add a new entry `names` pointing at `node`; fails if it exists.
    fn link(&mut self, names: &[String], path: &Path, node: usize) -> io::Result<()> {
        let (dir, name) = self.parent(names, path)?;
        let entries = self.entries_mut(dir);
        if entries.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        entries.insert(name.to_string(), node);
        Ok(())
    }

    fn new_node(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn file(&mut self, node: usize) -> io::Result<&mut Vec<u8>> {
        match &mut self.nodes[node] {
            Node::File { data, .. } => Ok(data),
            Node::Dir { .. } => Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")),
        }
    }
}

fn choose_current(rng: &mut Option<u64>) -> Option<bool> {
    rng.as_mut().map(|x| {
        // xorshift64: deterministic per seed, good enough to pick sides.
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x & 1 == 1
    })
}

fn materialize_dir(
    nodes: &[Node],
    dir: usize,
    view: View,
    rng: &mut Option<u64>,
    dest: &Path,
    written: &mut BTreeMap<usize, PathBuf>,
) -> io::Result<()> {
    let Node::Dir { entries, durable } = &nodes[dir] else { unreachable!("called on a directory") };
    let use_current = match view {
        View::Current => true,
        View::Durable => false,
        View::Mixed { .. } => entries == durable || choose_current(rng).unwrap_or(false),
    };
    let chosen = if use_current { entries } else { durable };
    for (name, &node) in chosen {
        let path = dest.join(name);
        if let Some(first) = written.get(&node) {
            // A second name for the same node: a hard link (or a directory
            // whose rename reached only one side; copy it then).
            if matches!(nodes[node], Node::File { .. }) {
                std::fs::hard_link(first, &path)?;
                continue;
            }
        }
        match &nodes[node] {
            Node::File { data, durable } => {
                let keep_current = match view {
                    View::Current => true,
                    View::Durable => false,
                    View::Mixed { .. } => data == durable || choose_current(rng).unwrap_or(false),
                };
                std::fs::write(&path, if keep_current { data } else { durable })?;
            }
            Node::Dir { .. } => {
                std::fs::create_dir(&path)?;
                materialize_dir(nodes, node, view, rng, &path, written)?;
            }
        }
        written.insert(node, path);
    }
    Ok(())
}

impl Fs for SimFs {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let names = self.components(path)?;
        let mut s = self.begin("create_dir", path, false)?;
        let node = s.new_node(Node::Dir { entries: BTreeMap::new(), durable: BTreeMap::new() });
        s.link(&names, path, node)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let names = self.components(path)?;
        let s = self.begin("list_dir", path, false)?;
        let Node::Dir { entries, .. } = &s.nodes[s.lookup(&names, path)?] else {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, path.display().to_string()));
        };
        Ok(entries
            .iter()
            .map(|(name, &node)| DirEntry {
                name: name.clone(),
                kind: if matches!(s.nodes[node], Node::Dir { .. }) { EntryKind::Dir } else { EntryKind::File },
            })
            .collect())
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        let names = self.components(path)?;
        let s = self.begin("stat", path, false)?;
        Ok(match &s.nodes[s.lookup(&names, path)?] {
            Node::File { data, .. } => Stat { kind: EntryKind::File, len: data.len() as u64 },
            Node::Dir { .. } => Stat { kind: EntryKind::Dir, len: 0 },
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.remove(path, "remove_file", EntryKind::File)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.remove(path, "remove_dir_all", EntryKind::Dir)
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_names, to_names) = (self.components(from)?, self.components(to)?);
        let mut s = self.begin("rename", from, false)?;
        let node = s.lookup(&from_names, from)?;
        s.link(&to_names, to, node)?;
        let (dir, name) = s.parent(&from_names, from)?;
        s.entries_mut(dir).remove(name);
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_names, to_names) = (self.components(from)?, self.components(to)?);
        let mut s = self.begin("hard_link", to, false)?;
        let node = s.lookup(&from_names, from)?;
        s.file(node)?;
        s.link(&to_names, to, node)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let names = self.components(path)?;
        let mut s = self.begin("sync_dir", path, true)?;
        let node = s.lookup(&names, path)?;
        match &mut s.nodes[node] {
            Node::Dir { entries, durable } => *durable = entries.clone(),
            Node::File { .. } => return Err(io::Error::new(io::ErrorKind::NotADirectory, path.display().to_string())),
        }
        Ok(())
    }

    fn create_file(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let names = self.components(path)?;
        let mut s = self.begin("create_file", path, false)?;
        let node = s.new_node(Node::File { data: Vec::new(), durable: Vec::new() });
        s.link(&names, path, node)?;
        Ok(Box::new(SimFile { fs: self.clone(), node, path: path.to_path_buf() }))
    }

    fn open_file_rw(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        // The simulation does not model permissions: the same as reading.
        self.open_file(path)
    }

    fn open_file(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let names = self.components(path)?;
        let mut s = self.begin("open_file", path, false)?;
        let node = s.lookup(&names, path)?;
        s.file(node)?;
        Ok(Box::new(SimFile { fs: self.clone(), node, path: path.to_path_buf() }))
    }

    fn clone_file(&self, from: &Path, to: &Path) -> io::Result<Box<dyn FsFile>> {
        let (from_names, to_names) = (self.components(from)?, self.components(to)?);
        let mut s = self.begin("clone_file", to, false)?;
        let src = s.lookup(&from_names, from)?;
        let data = s.file(src)?.clone();
        let node = s.new_node(Node::File { data, durable: Vec::new() });
        s.link(&to_names, to, node)?;
        Ok(Box::new(SimFile { fs: self.clone(), node, path: to.to_path_buf() }))
    }

    fn lock(&self, path: &Path) -> io::Result<(LockGuard, Box<dyn FsFile>)> {
        let names = self.components(path)?;
        let mut s = self.begin("lock", path, false)?;
        let node = match s.lookup(&names, path) {
            Ok(node) => node,
            Err(_) => {
                let node = s.new_node(Node::File { data: Vec::new(), durable: Vec::new() });
                s.link(&names, path, node)?;
                node
            }
        };
        Ok((Box::new(()), Box::new(SimFile { fs: self.clone(), node, path: path.to_path_buf() })))
    }
}

impl SimFs {
    fn remove(&self, path: &Path, what: &str, kind: EntryKind) -> io::Result<()> {
        let names = self.components(path)?;
        let mut s = self.begin(what, path, false)?;
        let node = s.lookup(&names, path)?;
        let is_dir = matches!(s.nodes[node], Node::Dir { .. });
        if is_dir != (kind == EntryKind::Dir) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what} on the wrong kind: {}", path.display()),
            ));
        }
        let (dir, name) = s.parent(&names, path)?;
        s.entries_mut(dir).remove(name);
        Ok(())
    }
}

struct SimFile {
    fs: SimFs,
    node: usize,
    path: PathBuf,
}

impl FsFile for SimFile {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut s = self.fs.begin("read_at", &self.path, false)?;
        let data = s.file(self.node)?;
        let end = offset as usize + buf.len();
        if end > data.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"));
        }
        buf.copy_from_slice(&data[offset as usize..end]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.fs.begin("write_at", &self.path, false)?;
        let data = s.file(self.node)?;
        let end = offset as usize + bytes.len();
        if end > data.len() {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.fs.begin("set_len", &self.path, false)?;
        s.file(self.node)?.resize(len as usize, 0);
        Ok(())
    }

    fn size(&mut self) -> io::Result<u64> {
        let mut s = self.fs.begin("size", &self.path, false)?;
        Ok(s.file(self.node)?.len() as u64)
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.fs.begin("sync", &self.path, true)?;
        match &mut s.nodes[self.node] {
            Node::File { data, durable } => *durable = data.clone(),
            Node::Dir { .. } => unreachable!("SimFile always names a file"),
        }
        Ok(())
    }

    fn data_ranges(&mut self) -> io::Result<Vec<Range<u64>>> {
        let mut s = self.fs.begin("data_ranges", &self.path, false)?;
        let len = s.file(self.node)?.len() as u64;
        Ok((len > 0).then_some(0..len).into_iter().collect())
    }
}
