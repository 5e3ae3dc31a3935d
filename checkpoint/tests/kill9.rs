//! A real process creating checkpoints in a loop is killed with SIGKILL at
//! random moments. Every restart must open a fully verified checkpoint whose
//! root hash the child recorded before publishing it.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use checkpoint::{StateDir, Verification};

const KILLS: usize = 50;

fn recorded_roots(path: &Path) -> HashMap<u64, Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut roots: HashMap<u64, Vec<String>> = HashMap::new();
    // A kill can cut the last line short; complete lines are what counts.
    for line in text.lines().filter(|l| l.len() > 64) {
        let mut parts = line.split(' ');
        if let (Some(h), Some(root)) = (parts.next(), parts.next()) {
            roots.entry(h.parse().unwrap()).or_default().push(root.to_string());
        }
    }
    roots
}

#[test]
fn kill_9_at_random_moments_never_loses_a_verified_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let record = tmp.path().join("roots.txt");
    // Deterministic "random" delays so a failure can be replayed.
    let mut seed: u64 = 0x5eed_1234;
    let mut newest_seen = 0;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_checkpoint-torture"))
            .arg(&state)
            .arg(&record)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(20 + (seed >> 33) % 150);
        let start = Instant::now();
        while start.elapsed() < delay {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("round {round}: the child exited on its own ({status}): {err}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let dir = StateDir::open(&state).unwrap();
        let Some(loaded) = dir.newest(Verification::Full).unwrap() else {
            assert_eq!(newest_seen, 0, "round {round}: checkpoints disappeared");
            continue;
        };
        assert!(loaded.skipped.is_empty(), "round {round}: a damaged checkpoint was published: {:?}", loaded.skipped);
        let c = loaded.checkpoint;
        let root = hex::encode(c.root_hash());
        let roots = recorded_roots(&record);
        assert!(
            roots.get(&c.height()).is_some_and(|r| r.contains(&root)),
            "round {round}: checkpoint {} has root {root}, which the child never recorded",
            c.height()
        );
        assert!(c.height() >= newest_seen, "round {round}: went back from {newest_seen} to {}", c.height());
        newest_seen = c.height();
        for h in dir.heights().unwrap() {
            dir.verify(h).unwrap_or_else(|e| panic!("round {round}: kept checkpoint {h} is damaged: {e}"));
        }
    }
    assert!(newest_seen >= 20, "the child made too little progress to test anything: {newest_seen}");
}
