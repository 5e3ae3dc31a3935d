//! Helpers shared by the CLI's test binaries.

use std::path::Path;
use std::time::{Duration, Instant};

/// The port a `serve --port-file` child wrote, once it has.
pub fn wait_for_port(port_file: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(port) = std::fs::read_to_string(port_file).unwrap_or_default().trim().parse() {
            return port;
        }
        assert!(Instant::now() < deadline, "the server never wrote its port");
        std::thread::sleep(Duration::from_millis(20));
    }
}
