//! A store checkpoints are shipped to and restored from.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use checkpoint::Hash;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::ReplicationError;
use crate::names;

/// An object store holding shipped checkpoints.
///
/// Its methods block; they run the store's asynchronous calls on a
/// runtime of their own, so call them from a plain thread (not from
/// inside another async runtime).
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    /// Chunks known to be in the store (shipped or seen by this `Remote`),
    /// so a later shipment need not ask for them again.
    known: Mutex<HashSet<Hash>>,
    /// Manifests and log segments known to be in the store with exactly
    /// the local bytes, by object name (only those still local are kept).
    known_objects: Mutex<HashSet<String>>,
    /// The oldest checkpoint the last pruning kept: older local ones are
    /// not shipped again (they would only be pruned again).
    floor: Mutex<Option<u64>>,
}

impl Remote {
    /// A remote on `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Result<Remote, ReplicationError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ReplicationError::io("start the object store runtime for", "the remote"))?;
        Ok(Remote { store, runtime, known: Mutex::default(), known_objects: Mutex::default(), floor: Mutex::default() })
    }

    /// A remote in the local directory `dir` (created if missing): for a
    /// second disk, a mounted network file system, or tests.
    pub fn local(dir: &Path) -> Result<Remote, ReplicationError> {
        std::fs::create_dir_all(dir).map_err(ReplicationError::io("create the store directory", dir))?;
        let store =
            LocalFileSystem::new_with_prefix(dir).map_err(ReplicationError::store("open", &ObjectPath::from("/")))?;
        // A pruned checkpoint's directory goes with its manifest, as its
        // prefix does in a bucket.
        let store = store.with_automatic_cleanup(true);
        Remote::new(Arc::new(store))
    }

    /// The store at `url`:
    /// - `file:///absolute/path`: a local directory (created if missing);
    /// - `s3://bucket[/prefix]`: an S3 bucket (or an S3-compatible server),
    ///   configured from the environment as the AWS tools are:
    ///   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and
    ///   `AWS_ENDPOINT` with `AWS_ALLOW_HTTP=true` for a local server.
    ///
    /// Other schemes are refused, naming the URL.
    pub fn from_url(url: &str) -> Result<Remote, ReplicationError> {
        Remote::from_url_with(url, std::iter::empty::<(&str, &str)>())
    }

    /// [`Remote::from_url`], with S3 settings given rather than read from
    /// the environment: `("aws_endpoint", "http://127.0.0.1:9000")`,
    /// `("aws_allow_http", "true")`, `("aws_access_key_id", ...)`, and the
    /// rest of `object_store`'s `AmazonS3ConfigKey` names.
    pub fn from_url_with<K: AsRef<str>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Remote, ReplicationError> {
        if let Some(path) = url.strip_prefix("file://").filter(|p| p.starts_with('/')) {
            return Remote::local(Path::new(path));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(ReplicationError::Unsupported { url: url.to_string() });
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ReplicationError::Unsupported { url: url.to_string() });
        }
        let open = ReplicationError::store("open", &ObjectPath::from(bucket));
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key.as_ref().parse().map_err(|_| ReplicationError::Unsupported {
                url: format!("{url} (unknown S3 setting {})", key.as_ref()),
            })?;
            builder = builder.with_config(key, value);
        }
        let s3 = builder.build().map_err(open)?;
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() { Remote::new(Arc::new(s3)) } else { Remote::new(Arc::new(PrefixStore::new(s3, prefix))) }
    }

    /// The heights of the checkpoints in the store, ascending. A
    /// checkpoint is there once its manifest is, which is shipped last.
    pub fn heights(&self) -> Result<Vec<u64>, ReplicationError> {
        let mut heights: Vec<u64> = self
            .listing(&names::checkpoints())?
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

    /// Forget which chunks are stored, so the next shipment asks the store
    /// again: after a failure, the store may have lost what it held.
    pub fn forget_known(&self) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.known_objects().clear();
    }

    /// The manifests and segments known to be in the store as they are
    /// locally, by object name.
    pub(crate) fn known_objects(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known_objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the store holds `bytes` as `object` (`false`: it lacks
    /// it). Other bytes there mean the store keeps another history
    /// ([`ReplicationError::Diverged`]). A match is remembered.
    pub(crate) fn holds(&self, object: &ObjectPath, bytes: &[u8]) -> Result<bool, ReplicationError> {
        let name = object.to_string();
        if self.known_objects().contains(&name) {
            return Ok(true);
        }
        match self.size(object)? {
            None => return Ok(false),
            Some(size) if size != bytes.len() as u64 => {
                let reason = format!("{size} bytes there, {} here", bytes.len());
                return Err(ReplicationError::Diverged { object: name, reason });
            }
            Some(_) if self.get(object)? != bytes => {
                let reason = "the same size, other bytes".to_string();
                return Err(ReplicationError::Diverged { object: name, reason });
            }
            Some(_) => {}
        }
        self.known_objects().insert(name);
        Ok(true)
    }

    /// Upload `bytes` as `object` unless the store [holds](Remote::holds)
    /// them already; returns whether it uploaded.
    pub(crate) fn put_once(&self, object: &ObjectPath, bytes: Bytes) -> Result<bool, ReplicationError> {
        if self.holds(object, &bytes)? {
            return Ok(false);
        }
        self.put(object, bytes)?;
        self.known_objects().insert(object.to_string());
        Ok(true)
    }

    /// The oldest checkpoint worth shipping (after a pruning).
    pub(crate) fn floor(&self) -> Option<u64> {
        *self.floor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ship no checkpoint below `height` from now on.
    pub(crate) fn raise_floor(&self, height: u64) {
        let mut floor = self.floor.lock().unwrap_or_else(|e| e.into_inner());
        *floor = floor.max(Some(height));
    }

    /// Forget that the chunk `hash` is stored (it was deleted).
    pub(crate) fn forget_chunk(&self, hash: &Hash) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).remove(hash);
    }

    /// Whether this remote already knows the chunk `hash` is in the store.
    pub(crate) fn is_known(&self, hash: &Hash) -> bool {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).contains(hash)
    }

    /// Remember that the chunk `hash` is in the store.
    pub(crate) fn mark_known(&self, hash: &Hash) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(*hash);
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
        Ok(self.listing(prefix)?.objects.into_iter().map(|o| o.location).collect())
    }

    /// The objects under `prefix` whose names sort after `offset`, in no
    /// particular order (S3 lists from `offset` on, rather than everything).
    pub(crate) fn list_after(
        &self,
        prefix: &ObjectPath,
        offset: &ObjectPath,
    ) -> Result<Vec<ObjectPath>, ReplicationError> {
        use futures_util::TryStreamExt;
        let listed = self.block_on(self.store.list_with_offset(Some(prefix), offset).try_collect::<Vec<_>>());
        Ok(listed.map_err(ReplicationError::store("list", prefix))?.into_iter().map(|o| o.location).collect())
    }

    /// Delete `object` (gone already is fine).
    pub(crate) fn delete(&self, object: &ObjectPath) -> Result<(), ReplicationError> {
        match self.block_on(self.store.delete(object)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(ReplicationError::Store { op: "delete", object: object.to_string(), source }),
        }
    }

    /// The objects and "directories" directly under `prefix`.
    fn listing(&self, prefix: &ObjectPath) -> Result<object_store::ListResult, ReplicationError> {
        self.block_on(self.store.list_with_delimiter(Some(prefix))).map_err(ReplicationError::store("list", prefix))
    }

    pub(crate) fn put(&self, object: &ObjectPath, bytes: Bytes) -> Result<(), ReplicationError> {
        self.block_on(self.store.put(object, bytes.into())).map(drop).map_err(ReplicationError::store("upload", object))
    }

    pub(crate) fn get(&self, object: &ObjectPath) -> Result<Bytes, ReplicationError> {
        self.block_on(async { self.store.get(object).await?.bytes().await })
            .map_err(ReplicationError::store("download", object))
    }
}
