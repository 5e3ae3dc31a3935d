//! Waiting on a channel: spin briefly, then park.
//!
//! A round trip through the host is two hand-offs between threads (caller
//! to scheduler, scheduler back), and parking and being woken costs tens of
//! microseconds each on a virtual machine, far more than the message. A
//! waiter that spins for a few microseconds first catches the answers that
//! come quickly.
//!
//! Spinning takes a core, so it is bounded twice: in time ([`SPIN`]), and
//! in number. Callers spin only while fewer than one per core but one are
//! spinning; the others park at once, so under load the spinners never
//! starve the threads that execute rounds. The scheduler has no slot to
//! take: it is one thread, and its idle moments are short under load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvError, RecvTimeoutError, TryRecvError};

/// How long a waiter spins before parking.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// Callers spinning now.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// Callers that may spin at once: one per core, less one for the
/// scheduler.
fn spin_slots() -> usize {
    static SLOTS: OnceLock<usize> = OnceLock::new();
    *SLOTS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1))
}

/// A caller's permission to spin, returned on drop.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        let slots = spin_slots();
        SPINNING.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < slots).then_some(n + 1)).ok().map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        SPINNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// [`Receiver::recv`] for a caller: spin for [`SPIN`] first if a slot is
/// free.
pub(crate) fn recv<T>(rx: &Receiver<T>) -> Result<T, RecvError> {
    let spun = Slot::take().map(|_slot| spin(rx));
    match spun {
        Some(Ok(Some(value))) => Ok(value),
        Some(Err(())) => Err(RecvError),
        Some(Ok(None)) | None => rx.recv(),
    }
}

/// [`Receiver::recv_timeout`] for the scheduler: spin for up to [`SPIN`]
/// of `timeout` first.
pub(crate) fn recv_timeout<T>(rx: &Receiver<T>, timeout: Duration) -> Result<T, RecvTimeoutError> {
    let start = Instant::now();
    if timeout.is_zero() {
        return rx.try_recv().map_err(|e| match e {
            TryRecvError::Empty => RecvTimeoutError::Timeout,
            TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
        });
    }
    match spin(rx) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => rx.recv_timeout(timeout.saturating_sub(start.elapsed())),
        Err(()) => Err(RecvTimeoutError::Disconnected),
    }
}

/// Poll for [`SPIN`]: `Some` value, `None` if nothing came, `Err` if the
/// sender is gone.
fn spin<T>(rx: &Receiver<T>) -> Result<Option<T>, ()> {
    let until = Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Ok(value) => return Ok(Some(value)),
            Err(TryRecvError::Disconnected) => return Err(()),
            Err(TryRecvError::Empty) if Instant::now() >= until => return Ok(None),
            // Yield rather than burn: a thread with work (a caller with
            // its reply, a worker) gets the core at once.
            Err(TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots are process-wide: these tests take turns.
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn values_arrive_whether_sent_before_during_or_after_the_spin() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(1).unwrap();
        assert_eq!(recv(&rx), Ok(1));
        for delay in [Duration::from_micros(10), Duration::from_millis(5)] {
            let tx = tx.clone();
            let sender = std::thread::spawn(move || {
                std::thread::sleep(delay);
                tx.send(2).unwrap();
            });
            assert_eq!(recv(&rx), Ok(2));
            sender.join().unwrap();
        }
        assert_eq!(SPINNING.load(Ordering::Acquire), 0, "a slot was not given back");
    }

    #[test]
    fn timeouts_and_disconnection_are_reported() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = crossbeam_channel::unbounded::<u8>();
        assert_eq!(recv_timeout(&rx, Duration::ZERO), Err(RecvTimeoutError::Timeout));
        let start = Instant::now();
        assert_eq!(recv_timeout(&rx, Duration::from_millis(20)), Err(RecvTimeoutError::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(20));
        drop(tx);
        assert_eq!(recv(&rx), Err(RecvError));
        assert_eq!(recv_timeout(&rx, Duration::from_millis(20)), Err(RecvTimeoutError::Disconnected));
    }

    #[test]
    fn no_more_callers_spin_than_there_are_slots() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let held: Vec<Slot> = std::iter::from_fn(Slot::take).take(1000).collect();
        assert_eq!(held.len(), spin_slots());
        assert!(Slot::take().is_none());
        drop(held);
        assert!(spin_slots() == 0 || Slot::take().is_some());
    }
}
