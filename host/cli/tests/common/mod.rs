//! Helpers shared by the CLI's test binaries (each uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `canister-host` binary under test.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin!("canister-host").to_path_buf()
}

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

/// Whether a real client a test drives is installed. Without it the test
/// is skipped with a note, unless `CANISTER_HOST_REQUIRE_CLIENTS` is set
/// (CI sets it, so a client that failed to install fails the run).
pub fn client_available(name: &str, installed: bool, install: &str) -> bool {
    if installed {
        return true;
    }
    assert!(std::env::var_os("CANISTER_HOST_REQUIRE_CLIENTS").is_none(), "{name} is not installed: run `{install}`");
    eprintln!("{name} is not installed: run `{install}` to run this test");
    false
}

/// A `canister-host serve` child on a free loopback port, killed (as by
/// `kill -9`) when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Serve the state directory `dir`.
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    /// Serve `dir` with extra `serve` arguments.
    pub fn start_with(dir: &Path, args: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        Server::run("serve", dir, &dir.join("port"), args, &[])
    }

    /// Run `command` (`serve`, `follow`) on `dir`, listening on a free
    /// port it writes to `port_file`, with extra `args` and environment
    /// variables `env`.
    pub fn run(command: &str, dir: &Path, port_file: &Path, args: &[&str], env: &[(String, String)]) -> Server {
        let _ = std::fs::remove_file(port_file);
        let child = Command::new(bin())
            .args([command, "--listen", "127.0.0.1:0", "--port-file"])
            .arg(port_file)
            .args(args)
            .envs(env.iter().cloned())
            .env("CANISTER_HOST_DIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let port = wait_for_port(port_file);
        Server { child, port }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
