//! Compiling modules for an executor: at most a few at a time (compiling
//! takes several times a module's size in memory), and once for the same
//! bytes while a compiled copy is alive, so a module compiled before its
//! install round reaches the round without compiling again.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use sha2::{Digest, Sha256};

use crate::engine::{CanisterModule, Engine};
use crate::module::ModuleError;

/// Compilations that may run at once.
const COMPILE_SLOTS: usize = 2;

/// The executor's compiler: a cache of live modules and a bounded gate.
#[derive(Default)]
pub(super) struct Compiler {
    live: Mutex<HashMap<[u8; 32], Weak<CanisterModule>>>,
    busy: Mutex<usize>,
    freed: Condvar,
}

/// A compilation slot, given back when dropped.
struct Slot<'a>(&'a Compiler);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *lock(&self.0.busy) -= 1;
        self.0.freed.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Compiler {
    /// The compiled module for `wasm`: a live one if any, or a new one.
    pub(super) fn compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        max_bytes: usize,
    ) -> Result<Arc<CanisterModule>, ModuleError> {
        let hash: [u8; 32] = Sha256::digest(wasm).into();
        if let Some(module) = self.cached(&hash) {
            return Ok(module);
        }
        let _slot = self.slot();
        // Another caller may have compiled it while this one waited.
        if let Some(module) = self.cached(&hash) {
            return Ok(module);
        }
        let module = engine.compile(wasm, max_bytes)?;
        let mut live = lock(&self.live);
        live.retain(|_, m| m.strong_count() > 0);
        live.insert(hash, Arc::downgrade(&module));
        Ok(module)
    }

    /// Compilations running now.
    pub(super) fn in_progress(&self) -> usize {
        *lock(&self.busy)
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Arc<CanisterModule>> {
        lock(&self.live).get(hash).and_then(Weak::upgrade)
    }

    fn slot(&self) -> Slot<'_> {
        let mut busy = lock(&self.busy);
        while *busy >= COMPILE_SLOTS {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Slot(self)
    }
}
