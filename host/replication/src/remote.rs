//! A store checkpoints are shipped to and restored from.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use checkpoint::Hash;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::ReplicationError;
use crate::names;

/// An object store holding shipped checkpoints.
///
/// Its methods block; they run the store's asynchronous calls on a
/// runtime of their own, so call them from a plain thread (not from
/// inside another async runtime).
pub struct Remote {
    pub(crate) store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    /// Chunks known to be in the store (shipped or seen by this `Remote`),
    /// so a later shipment need not ask for them again.
    pub(crate) known: Mutex<HashSet<Hash>>,
}

impl Remote {
    /// A remote on `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Result<Remote, ReplicationError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ReplicationError::io("start the object store runtime for", "the remote"))?;
        Ok(Remote { store, runtime, known: Mutex::new(HashSet::new()) })
    }

    /// A remote in the local directory `dir` (created if missing): for a
    /// second disk, a mounted network file system, or tests.
    pub fn local(dir: &Path) -> Result<Remote, ReplicationError> {
        std::fs::create_dir_all(dir).map_err(ReplicationError::io("create the store directory", dir))?;
        let store =
            LocalFileSystem::new_with_prefix(dir).map_err(ReplicationError::store("open", &ObjectPath::from("/")))?;
        Remote::new(Arc::new(store))
    }

    /// The store at `url`. `file:///absolute/path` is a local directory
    /// (created if missing); other schemes are refused, naming it.
    pub fn from_url(url: &str) -> Result<Remote, ReplicationError> {
        match url.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => Remote::local(Path::new(path)),
            _ => Err(ReplicationError::Unsupported { url: url.to_string() }),
        }
    }

    /// The heights of the checkpoints in the store, ascending. A
    /// checkpoint is there once its manifest is, which is shipped last.
    pub fn heights(&self) -> Result<Vec<u64>, ReplicationError> {
        let prefix = names::checkpoints();
        let listed = self
            .block_on(self.store.list_with_delimiter(Some(&prefix)))
            .map_err(ReplicationError::store("list", &prefix))?;
        let mut heights: Vec<u64> = listed
            .common_prefixes
            .iter()
            .filter_map(|dir| dir.filename().and_then(checkpoint::layout::parse_checkpoint_dir_name))
            .collect();
        heights.sort_unstable();
        Ok(heights)
    }

    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Whether this remote already knows the chunk `hash` is in the store.
    pub(crate) fn is_known(&self, hash: &Hash) -> bool {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).contains(hash)
    }

    /// Whether `object` is in the store.
    pub(crate) fn exists(&self, object: &ObjectPath) -> Result<bool, ReplicationError> {
        self.size(object).map(|size| size.is_some())
    }

    /// The size of `object`, or `None` if the store lacks it.
    pub(crate) fn size(&self, object: &ObjectPath) -> Result<Option<u64>, ReplicationError> {
        match self.block_on(self.store.head(object)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(ReplicationError::Store { op: "look up", object: object.to_string(), source }),
        }
    }

    /// The objects directly under `prefix`.
    pub(crate) fn list(&self, prefix: &ObjectPath) -> Result<Vec<ObjectPath>, ReplicationError> {
        let listed = self
            .block_on(self.store.list_with_delimiter(Some(prefix)))
            .map_err(ReplicationError::store("list", prefix))?;
        Ok(listed.objects.into_iter().map(|o| o.location).collect())
    }

    pub(crate) fn put(&self, object: &ObjectPath, bytes: Bytes) -> Result<(), ReplicationError> {
        self.block_on(self.store.put(object, bytes.into())).map(drop).map_err(ReplicationError::store("upload", object))
    }

    pub(crate) fn get(&self, object: &ObjectPath) -> Result<Bytes, ReplicationError> {
        self.block_on(async { self.store.get(object).await?.bytes().await })
            .map_err(ReplicationError::store("download", object))
    }
}
