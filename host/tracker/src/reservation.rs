//! The address-space reservation behind one wasm linear memory, and the raw
//! `mmap`/`mprotect`/copy operations on it.
//!
//! Layout: `[guard][capacity][guard]`, all `PROT_NONE` and `MAP_NORESERVE`
//! at first, so reserving 4 GiB costs no memory. JIT code elides bounds
//! checks against the guards, so they stay inaccessible for the
//! reservation's whole life. The memory never moves.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use nix::errno::Errno;
use page_delta::{PAGE_SIZE, PageBytes};

/// Page protection of part of a memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Prot {
    None,
    Read,
    ReadWrite,
}

impl Prot {
    fn bits(self) -> libc::c_int {
        match self {
            Prot::None => libc::PROT_NONE,
            Prot::Read => libc::PROT_READ,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        }
    }
}

/// An owned reservation. Page numbers are relative to the memory's base.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// Start of the whole mapping, leading guard included.
    start: NonNull<u8>,
    total: usize,
    guard: usize,
    capacity: usize,
}

// SAFETY: the reservation is a plain region of address space owned by this
// value; every operation on it is a system call or a copy whose caller
// guarantees the pages involved are accessible, so it may move between and
// be shared by threads.
unsafe impl Send for Reservation {}
// SAFETY: see `Send`: no method relies on thread-local state.
unsafe impl Sync for Reservation {}

impl Reservation {
    /// Reserve `capacity` bytes plus `guard` bytes on each side.
    pub(crate) fn new(capacity: usize, guard: usize) -> io::Result<Reservation> {
        if !capacity.is_multiple_of(PAGE_SIZE) || !guard.is_multiple_of(PAGE_SIZE) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "reservation sizes must be page multiples"));
        }
        let total = capacity
            .checked_add(2 * guard)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "reservation size overflows"))?;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing cannot alias anything.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns null on success");
        Ok(Reservation { start, total, guard, capacity })
    }

    /// First byte of the memory (after the leading guard).
    pub(crate) fn base(&self) -> *mut u8 {
        // SAFETY: `guard < total`, so the result stays inside the mapping.
        unsafe { self.start.as_ptr().add(self.guard) }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `addr` lies in the memory part (not the guards).
    pub(crate) fn page_of(&self, addr: usize) -> Option<usize> {
        let base = self.base() as usize;
        (addr >= base && addr < base + self.capacity).then(|| (addr - base) / PAGE_SIZE)
    }

    /// Map the first `pages` pages of `file` over the start of the memory,
    /// privately (writes never reach the file), with protection `prot`.
    pub(crate) fn map_file(&self, file: &File, pages: usize, prot: Prot) -> io::Result<()> {
        let len = pages.checked_mul(PAGE_SIZE).filter(|len| *len <= self.capacity);
        let len = len.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file larger than the memory"))?;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the target range lies inside this reservation (checked
        // above), which nothing else maps; MAP_FIXED replaces our own
        // PROT_NONE pages only.
        let ptr = unsafe {
            libc::mmap(self.base().cast(), len, prot.bits(), libc::MAP_PRIVATE | libc::MAP_FIXED, file.as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Change the protection of pages `first..first + count`.
    ///
    /// Async-signal-safe: a single system call, no allocation, no panic.
    /// Fails with the errno (`ENOMEM` when the process hits
    /// `vm.max_map_count`; `EINVAL` for a range outside the memory).
    pub(crate) fn protect(&self, first: usize, count: usize, prot: Prot) -> Result<(), Errno> {
        if count == 0 {
            return Ok(());
        }
        if !self.holds_pages(first, count) {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the range lies inside this reservation (checked above).
        let rc = unsafe { libc::mprotect(self.base().add(first * PAGE_SIZE).cast(), count * PAGE_SIZE, prot.bits()) };
        if rc == 0 { Ok(()) } else { Err(Errno::last()) }
    }

    /// Whether pages `first..first + count` lie inside the memory.
    fn holds_pages(&self, first: usize, count: usize) -> bool {
        first.checked_add(count).and_then(|end| end.checked_mul(PAGE_SIZE)).is_some_and(|end| end <= self.capacity)
    }

    /// Copy `bytes` into page `page` (`EINVAL` if it is outside the
    /// memory). Async-signal-safe, and never panics.
    ///
    /// # Safety
    /// The page must currently be mapped writable.
    pub(crate) unsafe fn write_page(&self, page: usize, bytes: &PageBytes) -> Result<(), Errno> {
        if !self.holds_pages(page, 1) {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the page is inside the reservation (checked above) and
        // writable (the caller's guarantee), and cannot overlap `bytes`,
        // which lives outside every reservation.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base().add(page * PAGE_SIZE), PAGE_SIZE) };
        Ok(())
    }

    /// The bytes of page `page`.
    ///
    /// # Safety
    /// The page must currently be mapped readable, and must not be written
    /// (by wasm or the host) while the returned reference lives.
    pub(crate) unsafe fn page(&self, page: usize) -> &PageBytes {
        debug_assert!((page + 1) * PAGE_SIZE <= self.capacity);
        // SAFETY: readable per the caller's guarantee; page-aligned and
        // PAGE_SIZE long, so the cast to an array reference is valid.
        unsafe { &*self.base().add(page * PAGE_SIZE).cast::<PageBytes>() }
    }

    /// The bytes `offset..offset + len` of the memory.
    ///
    /// # Safety
    /// Every page of the range must be mapped readable, and must not be
    /// written while the returned slice lives.
    pub(crate) unsafe fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        debug_assert!(offset + len <= self.capacity);
        // SAFETY: readable per the caller's guarantee and inside the mapping.
        unsafe { std::slice::from_raw_parts(self.base().add(offset), len) }
    }

    /// Mutable access to `offset..offset + len` of the memory.
    ///
    /// # Safety
    /// Every page of the range must be mapped writable, and nothing else may
    /// access the range while the returned slice lives.
    #[allow(clippy::mut_from_ref)] // the reservation is address space, not Rust-owned data
    pub(crate) unsafe fn bytes_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        debug_assert!(offset + len <= self.capacity);
        // SAFETY: writable and exclusive per the caller's guarantee.
        unsafe { std::slice::from_raw_parts_mut(self.base().add(offset), len) }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region mapped in `new`; no reference
        // into it outlives the reservation (all accessors borrow `self`).
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.total) };
    }
}
