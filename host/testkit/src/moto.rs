//! A real S3 API for tests: a local `moto_server` (PyPI `moto[server]`,
//! which CI installs), started on a loopback port with an empty bucket.
//! Tests skip with a note when moto is not installed, unless
//! `CANISTER_HOST_REQUIRE_CLIENTS` is set (CI sets it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every server starts with.
pub const BUCKET: &str = "canister-host";

/// `moto_server`: `CANISTER_HOST_MOTO_SERVER`, else on the `PATH`.
fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CANISTER_HOST_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let found = Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status();
    found.is_ok_and(|s| s.success()).then(|| PathBuf::from("moto_server"))
}

/// A `moto_server` child, killed when dropped.
pub struct Moto {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Moto {
    /// Start one on `port` (0: a free one) with an empty [`BUCKET`];
    /// `None` (after a note) when moto is not installed and not required.
    pub fn start(port: u16) -> Option<Moto> {
        let Some(bin) = moto_server() else {
            assert!(
                std::env::var_os("CANISTER_HOST_REQUIRE_CLIENTS").is_none(),
                "moto_server is not installed: run `pip install 'moto[server]'`"
            );
            eprintln!("moto_server is not installed: run `pip install 'moto[server]'` to run this test");
            return None;
        };
        let port = if port == 0 {
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        } else {
            port
        };
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while moto.request("PUT", &format!("/{BUCKET}")).is_none_or(|status| status != 200) {
            assert!(Instant::now() < deadline, "moto_server never answered on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    /// An unsigned HTTP/1.1 request; the response's status code.
    pub fn request(&self, method: &str, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }

    /// Its URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The S3 settings that reach it, by `object_store`'s names (for
    /// `Remote::from_url_with`).
    pub fn options(&self) -> Vec<(&'static str, String)> {
        let fixed = [("aws_allow_http", "true"), ("aws_access_key_id", "test"), ("aws_secret_access_key", "test")];
        let mut options: Vec<(&'static str, String)> = fixed.iter().map(|(k, v)| (*k, v.to_string())).collect();
        options.push(("aws_region", "us-east-1".into()));
        options.push(("aws_endpoint", self.endpoint()));
        options
    }

    /// The same settings as the AWS environment variables (for a
    /// `canister-host` child given an `s3://` URL).
    pub fn env(&self) -> Vec<(String, String)> {
        self.options().into_iter().map(|(k, v)| (k.to_uppercase(), v)).collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
