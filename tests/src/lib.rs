//! End-to-end tests of canister-host: whole canisters run through the host,
//! across real processes and restarts. The tests live in `tests/tests/`.

#![deny(unsafe_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Delays between a start and its SIGKILL, drawn from a fixed seed so a
/// failing run can be repeated.
pub struct KillSchedule {
    seed: u64,
    min_ms: u64,
    spread_ms: u64,
}

impl KillSchedule {
    /// Delays of `min_ms` plus up to `spread_ms`, from `seed`.
    pub fn new(seed: u64, min_ms: u64, spread_ms: u64) -> KillSchedule {
        KillSchedule { seed, min_ms, spread_ms }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Duration::from_millis(self.min_ms + (self.seed >> 33) % self.spread_ms.max(1))
    }
}

/// Run `command` for `delay`, then kill it with SIGKILL and reap it. Panics
/// (naming `round`) if it exits on its own first, with what it printed to
/// stderr.
pub fn run_then_kill(mut command: Command, delay: Duration, round: usize) {
    let mut child: Child = command.stderr(Stdio::piped()).spawn().expect("the driver starts");
    let start = Instant::now();
    while start.elapsed() < delay {
        if let Some(status) = child.try_wait().expect("the driver can be waited for") {
            let mut err = String::new();
            if let Some(stderr) = child.stderr.as_mut() {
                let _ = std::io::Read::read_to_string(stderr, &mut err);
            }
            panic!("round {round}: the driver exited on its own ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL is delivered");
    child.wait().expect("the killed driver is reaped");
}
