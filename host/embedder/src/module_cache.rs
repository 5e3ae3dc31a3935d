//! The compiled-module cache: Cranelift's output for each prepared module,
//! kept on disk so reopening a state directory, or installing a module
//! seen before, loads machine code instead of compiling it again (a large
//! Rust canister takes over a second to compile, a few milliseconds to
//! load).
//!
//! An entry's key is a SHA-256 of the engine's compatibility fingerprint
//! (wasmtime's version and every setting that affects code) and of the
//! module as prepared (after this host's rewriting), so a new wasmtime, a
//! new engine setting or a change in the rewriting all miss rather than
//! load stale code. Each file is `magic | length | crc32c | bytes`, where
//! the bytes are `Module::serialize`'s output; an entry that fails the
//! check, or that wasmtime refuses, is deleted and compiled again, never
//! trusted. Files are written whole under a temporary name and renamed into
//! place, so a reader sees a complete entry or none. The cache is bounded:
//! past `max_bytes`, the least recently used entries go.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use memory_tracker::{TrustedCompiledModule, load_compiled_module};
use sha2::{Digest, Sha256};
use wasmtime::Module;

/// First bytes of every entry (bumped if the framing changes).
const MAGIC: &[u8; 8] = b"chmod\x00\x00\x01";
/// Magic, payload length (u64 LE), payload crc32c (u32 LE).
const HEADER: usize = 8 + 8 + 4;
/// Entry files' extension.
const EXTENSION: &str = "cwasm";

/// What the cache has done since it was opened.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleCacheCounters {
    /// Modules loaded from the cache instead of compiled.
    pub hits: u64,
    /// Modules not in the cache (compiled).
    pub misses: u64,
    /// Entries deleted because they were damaged or stale.
    pub rejected: u64,
    /// Entries written.
    pub stored: u64,
}

/// A directory of compiled modules.
pub struct ModuleCache {
    dir: PathBuf,
    max_bytes: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    stored: AtomicU64,
    /// Distinguishes this process's temporary files.
    writes: AtomicU64,
}

impl ModuleCache {
    /// A cache in `dir` (created when first written), holding at most about
    /// `max_bytes`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> ModuleCache {
        ModuleCache {
            dir: dir.into(),
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// Where it lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What it has done since it was opened.
    pub fn counters(&self) -> ModuleCacheCounters {
        ModuleCacheCounters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
        }
    }

    /// The key of `prepared` (a module as this host rewrote it) compiled
    /// by `engine`.
    pub(crate) fn key(engine: &wasmtime::Engine, prepared: &[u8]) -> String {
        let mut digest = Sha256::new();
        engine.precompile_compatibility_hash().hash(&mut DigestHasher(&mut digest));
        digest.update(prepared);
        digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.{EXTENSION}"))
    }

    /// The module stored under `key`, if there is a sound one.
    pub(crate) fn load(&self, engine: &wasmtime::Engine, key: &str) -> Option<Module> {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a compiled module; compiling");
                }
                self.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let loaded = match unframe(&bytes) {
            Some(payload) => load_compiled_module(engine, TrustedCompiledModule::vouched_for(payload))
                .map_err(|e| format!("wasmtime refused it: {e:#}")),
            None => Err("it is damaged (length or checksum mismatch)".to_string()),
        };
        match loaded {
            Ok(module) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                // Mark it recently used, for eviction.
                if let Ok(file) = std::fs::File::options().append(true).open(&path) {
                    let _ = file.set_modified(SystemTime::now());
                }
                Some(module)
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "discarding a compiled module; compiling again");
                let _ = std::fs::remove_file(&path);
                self.rejected.fetch_add(1, Ordering::Relaxed);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Store `module` under `key`. A cache that cannot be written costs
    /// only speed, so failures are logged, not returned.
    pub(crate) fn store(&self, key: &str, module: &Module) {
        if let Err(e) = self.try_store(key, module) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot store a compiled module");
        }
    }

    fn try_store(&self, key: &str, module: &Module) -> Result<(), String> {
        let payload = module.serialize().map_err(|e| format!("cannot serialize it: {e:#}"))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create the directory: {e}"))?;
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("{key}.tmp-{}-{n}", std::process::id()));
        std::fs::write(&tmp, frame(&payload)).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, self.path(key)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot rename {} into place: {e}", tmp.display())
        })?;
        self.stored.fetch_add(1, Ordering::Relaxed);
        self.evict();
        Ok(())
    }

    /// Delete the least recently used entries (and any leftover temporary
    /// files) while the cache is over its size.
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let is_entry = path.extension().is_some_and(|e| e == EXTENSION);
            let is_stale_tmp = !is_entry
                && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(".tmp-"))
                && meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age.as_secs() > 3600);
            if is_stale_tmp {
                let _ = std::fs::remove_file(&path);
            } else if is_entry {
                files.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), path));
            }
        }
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of a sound entry.
fn unframe(bytes: &[u8]) -> Option<&[u8]> {
    let header = bytes.get(..HEADER)?;
    let payload = &bytes[HEADER..];
    let len = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let crc = u32::from_le_bytes(header[16..20].try_into().ok()?);
    (&header[..8] == MAGIC && len == payload.len() as u64 && crc32c::crc32c(payload) == crc).then_some(payload)
}

/// Feeds `Hash` output into a SHA-256, so the key is stable across runs
/// (std's hashers promise no such thing).
struct DigestHasher<'a>(&'a mut Sha256);

impl Hasher for DigestHasher<'_> {
    fn finish(&self) -> u64 {
        // Only `write` is used: the digest is read from the SHA-256.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_detects_damage() {
        let framed = frame(b"compiled code");
        assert_eq!(unframe(&framed), Some(&b"compiled code"[..]));
        for i in 0..framed.len() {
            let mut damaged = framed.clone();
            damaged[i] ^= 0x40;
            assert_eq!(unframe(&damaged), None, "a flipped bit at byte {i} went unnoticed");
        }
        assert_eq!(unframe(&framed[..framed.len() - 1]), None);
        assert_eq!(unframe(&framed[..5]), None);
    }

    fn module(engine: &wasmtime::Engine) -> Module {
        Module::new(engine, wat::parse_str("(module (func (export \"f\") (result i32) i32.const 7))").unwrap()).unwrap()
    }

    #[test]
    fn an_entry_from_another_engine_configuration_is_refused_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path(), 1 << 30);
        let ours = wasmtime::Engine::new(wasmtime::Config::new().consume_fuel(true)).unwrap();
        let theirs = wasmtime::Engine::default();
        // A sound entry, but compiled for another configuration, stored
        // where ours would look.
        let key = ModuleCache::key(&ours, b"prepared");
        cache.store(&key, &module(&theirs));
        assert!(cache.load(&ours, &key).is_none());
        assert_eq!(cache.counters(), ModuleCacheCounters { hits: 0, misses: 1, rejected: 1, stored: 1 });
        assert!(!cache.path(&key).exists());
        // Stored by the right engine, it loads.
        cache.store(&key, &module(&ours));
        assert!(cache.load(&ours, &key).is_some());
        assert_eq!(cache.counters().hits, 1);
    }

    #[test]
    fn the_key_follows_the_engine_and_the_module() {
        let a = wasmtime::Engine::default();
        let b = wasmtime::Engine::new(wasmtime::Config::new().consume_fuel(true)).unwrap();
        assert_eq!(ModuleCache::key(&a, b"m"), ModuleCache::key(&wasmtime::Engine::default(), b"m"));
        assert_ne!(ModuleCache::key(&a, b"m"), ModuleCache::key(&b, b"m"));
        assert_ne!(ModuleCache::key(&a, b"m"), ModuleCache::key(&a, b"n"));
    }

    #[test]
    fn the_least_recently_used_entries_go_past_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let one = frame(&module(&engine).serialize().unwrap()).len() as u64;
        // Room for two entries.
        let cache = ModuleCache::new(dir.path(), 2 * one + one / 2);
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            cache.store(key, &module(&engine));
            // Distinct modification times, oldest first.
            let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64);
            std::fs::File::options().append(true).open(cache.path(key)).unwrap().set_modified(when).unwrap();
        }
        cache.store("d", &module(&engine));
        let left: Vec<bool> = ["a", "b", "c", "d"].iter().map(|k| cache.path(k).exists()).collect();
        assert_eq!(left, [false, false, true, true]);
    }
}
