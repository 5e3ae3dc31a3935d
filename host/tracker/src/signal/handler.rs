//! Hooking a tracker into wasmtime's signal handling.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::unix::StoreExt;

use super::cell::TrackerCell;

/// Route `store`'s faults to `cell`.
pub(super) fn install<T>(store: &mut Store<T>, cell: Arc<TrackerCell>) {
    let handler = move |signum: libc::c_int, info: *const libc::siginfo_t, context: *const libc::c_void| -> bool {
        if signum != libc::SIGSEGV && signum != libc::SIGBUS {
            return false;
        }
        // SAFETY: the kernel passes a valid siginfo for SIGSEGV and SIGBUS,
        // whose si_addr is the faulting address.
        let addr = unsafe { (*info).si_addr() } as usize;
        cell.on_fault(addr, is_write(context))
    };
    // SAFETY: the handler is async-signal-safe: it reads the signal context,
    // and `on_fault` touches only atomics, preallocated bitmaps and lists,
    // allocation-free page-map lookups, mprotect and memcpy.
    unsafe { store.set_signal_handler(handler) };
}

/// Whether the fault was a write, from the x86-64 page-fault error code
/// (bit 1 of `REG_ERR`). Elsewhere it is unknown, reported as a read; the
/// tracker then learns of the write from a second fault on the clean page.
fn is_write(context: *const libc::c_void) -> bool {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        // SAFETY: for a SA_SIGINFO handler the third argument is the
        // interrupted thread's ucontext_t.
        let err = unsafe { (*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_ERR as usize] };
        err & 2 != 0
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = context;
        false
    }
}
