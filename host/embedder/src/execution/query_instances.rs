//! Instances kept between queries, per thread, so a query costs its own
//! work rather than an instantiation.
//!
//! An instance is kept with the committed state its memory holds. After a
//! query it is rolled back: the pages the query changed get their committed
//! bytes again and are re-protected, and the globals are restored, so the
//! next query sees exactly the committed state (nothing leaks from one
//! query to the next). A later query on a newer state of the same canister
//! first catches the instance up: the pages that changed since (the page
//! map's delta tells them) are written in. Anything else (another module,
//! another memory size or base file, a trap, too many changed pages) drops
//! the instance, and the query instantiates afresh.
//!
//! Instances belong to the thread that made them: the tracker serves a
//! memory's faults only on the thread running its store.

use std::cell::RefCell;
use std::sync::Arc;

use page_delta::PageMap;

use super::instance::LiveInstance;
use super::state::{CanisterState, GlobalValue};
use crate::engine::CanisterModule;
use crate::units::WasmPages;

/// Instances kept per thread (each holds an address-space reservation and
/// its mappings).
const INSTANCES_PER_THREAD: usize = 4;

/// Pages a kept instance may be caught up by; past this, instantiating
/// afresh (which maps the base file and copies nothing) is as cheap.
const MAX_CATCH_UP_PAGES: usize = 256;

/// One kept instance: whose it is, and the state its memory holds.
struct Kept {
    canister: Vec<u8>,
    module: Arc<CanisterModule>,
    heap: PageMap,
    heap_pages: WasmPages,
    live: LiveInstance,
}

thread_local! {
    static KEPT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

/// This thread's kept instance of the canister `state` belongs to, made to
/// hold exactly `state`'s heap, or `None` (the caller instantiates).
pub(super) fn take(state: &CanisterState) -> Option<LiveInstance> {
    let module = state.module.as_ref()?;
    let kept = KEPT.with_borrow_mut(|kept| {
        let at = kept.iter().position(|k| k.canister == state.env.id)?;
        Some(kept.remove(at))
    })?;
    if !Arc::ptr_eq(&kept.module, module) || kept.heap_pages != state.heap_pages || !kept.heap.same_base(&state.heap) {
        return None;
    }
    let mut live = kept.live;
    // The globals of a state no update has run on yet are the module's
    // initial ones, which the instance holds already.
    if !state.globals.is_empty() {
        live.restore_globals(&state.globals).ok()?;
    }
    if !state.heap.delta().same_version(kept.heap.delta()) {
        let changes = state.heap.delta().changes_since(kept.heap.delta())?;
        if changes.len() > MAX_CATCH_UP_PAGES {
            return None;
        }
        live.catch_up(&changes, state.heap.clone()).ok()?;
    }
    Some(live)
}

/// Keep `live`, which ran a query on `state` without trapping, for the
/// next query on this thread: roll it back to `state`, and its globals to
/// `globals`, their values before the query.
pub(super) fn keep(state: &CanisterState, mut live: LiveInstance, globals: &[GlobalValue]) {
    let Some(module) = state.module.clone() else { return };
    if live.roll_back(&state.heap, state.heap_pages, globals).is_err() {
        return;
    }
    let kept =
        Kept { canister: state.env.id.clone(), module, heap: state.heap.clone(), heap_pages: state.heap_pages, live };
    KEPT.with_borrow_mut(|all| {
        // Newest last; the oldest goes when the thread keeps too many.
        if all.len() >= INSTANCES_PER_THREAD {
            all.remove(0);
        }
        all.push(kept);
    });
}
