//! Example canisters, written in C and compiled to wasm32 with clang-19.
//!
//! The built `.wasm` files are committed under `wasm/`, so nothing here needs
//! clang to build or test; `build.sh` rebuilds them, and this crate's test
//! checks that the committed files match their sources whenever the same
//! clang is installed. See `README.md` in this folder for every method.

#![deny(unsafe_code)]

/// `inc`/`get` on a counter, and `inc_then_trap`.
pub const COUNTER: &[u8] = include_bytes!("../wasm/counter.wasm");
/// Reads and writes memory in controlled patterns (benchmarks, tests).
pub const MEMORY_STRESS: &[u8] = include_bytes!("../wasm/memory_stress.wasm");
/// A hash-map key-value store.
pub const KV: &[u8] = include_bytes!("../wasm/kv.wasm");
/// Accounts and transfers: the micropayments workload. Its interface is
/// in its `candid:service` metadata (from `c/ledger.did`).
pub const LEDGER: &[u8] = include_bytes!("../wasm/ledger.wasm");
/// The ledger with a transfer fee: a modified module for replay
/// verification to catch.
pub const LEDGER_FEE: &[u8] = include_bytes!("../wasm/ledger_fee.wasm");

/// Calls between canisters through the System API: fan-out, relays of
/// every reject code, call chains, traps in callbacks and cleanup.
pub const CALLS: &[u8] = include_bytes!("../wasm/calls.wasm");

/// Calls every System API import this host implements.
pub const SYSAPI: &[u8] = include_bytes!("../wasm/sysapi.wasm");
/// A greeter shaped like a Motoko canister (imports call_simple, exports
/// `__motoko_async_helper`, keeps constants in data segments).
pub const MOTOKO_STYLE: &[u8] = include_bytes!("../wasm/motoko_style.wasm");

/// Motoko canisters, built by `motoko/build.js` with the npm `motoko`
/// compiler: wasm64 modules with enhanced orthogonal persistence and a
/// start function.
pub mod motoko {
    /// A persistent counter (`inc`, `get`, `upgraded`).
    pub const COUNTER: &[u8] = include_bytes!("../wasm/motoko/counter.wasm");
    /// The callee of `CALLER`'s calls (`ping`, `boom`, `count`).
    pub const CALLEE: &[u8] = include_bytes!("../wasm/motoko/callee.wasm");
    /// Calls another canister with `await` (`ping_twice`, `catch_boom`, `counts`).
    pub const CALLER: &[u8] = include_bytes!("../wasm/motoko/caller.wasm");
    /// Counts the ticks of a recurring timer (`get`).
    pub const TIMER: &[u8] = include_bytes!("../wasm/motoko/timer.wasm");
    /// Creates `CHILD` canisters through the management canister (`spawn`,
    /// `bump_all`, `count`).
    pub const FACTORY: &[u8] = include_bytes!("../wasm/motoko/factory.wasm");
    /// Composite queries over other canisters' queries (`total`,
    /// `total_or_error`, `nest`).
    pub const AGGREGATOR: &[u8] = include_bytes!("../wasm/motoko/aggregator.wasm");
    /// Sends cycles with a call and gets the unaccepted part back (`send`,
    /// `receive`, `total_received`).
    pub const WALLET: &[u8] = include_bytes!("../wasm/motoko/wallet.wasm");
    /// The actor class `FACTORY` instantiates (`inc`).
    pub const CHILD: &[u8] = include_bytes!("../wasm/motoko/child.wasm");
    /// Serves web pages through the HTTP gateway (`http_request`,
    /// `http_request_update`, which counts posts).
    pub const WEB: &[u8] = include_bytes!("../wasm/motoko/web.wasm");

    /// Every Motoko canister, by name.
    pub const ALL: &[(&str, &[u8])] = &[
        ("counter", COUNTER),
        ("callee", CALLEE),
        ("caller", CALLER),
        ("timer", TIMER),
        ("factory", FACTORY),
        ("child", CHILD),
        ("aggregator", AGGREGATOR),
        ("wallet", WALLET),
        ("web", WEB),
    ];
}

/// The message-latency benchmark canister (`c/bench.c`): one measurable
/// thing per method, raw little-endian arguments.
pub const BENCH: &[u8] = include_bytes!("../wasm/bench.wasm");

/// Every example canister, by name.
pub const ALL: &[(&str, &[u8])] = &[
    ("bench", BENCH),
    ("counter", COUNTER),
    ("memory_stress", MEMORY_STRESS),
    ("kv", KV),
    ("ledger", LEDGER),
    ("ledger_fee", LEDGER_FEE),
    ("sysapi", SYSAPI),
    ("motoko_style", MOTOKO_STYLE),
    ("calls", CALLS),
];

/// First address of memory_stress's test region; everything below holds
/// its stack and static data.
pub const MEMORY_STRESS_HEAP_START: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    /// Rebuilding from the C sources reproduces the committed modules, byte
    /// for byte, whenever the toolchain that built them is installed.
    #[test]
    fn committed_wasm_matches_the_sources() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let available = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
        if !available("clang-19") || !available("wasm-ld-19") {
            eprintln!("clang-19/wasm-ld-19 not installed: cannot rebuild the canisters to compare");
            return;
        }
        let out = tempfile::tempdir().unwrap();
        let status = Command::new(here.join("build.sh")).arg(out.path()).status().unwrap();
        assert!(status.success(), "build.sh failed");
        let committed_toolchain = std::fs::read_to_string(here.join("wasm/TOOLCHAIN")).unwrap();
        let toolchain = std::fs::read_to_string(out.path().join("TOOLCHAIN")).unwrap();
        if toolchain != committed_toolchain {
            eprintln!(
                "installed toolchain differs from the committed one; bytes may legitimately differ:\n{toolchain}"
            );
            return;
        }
        for (name, committed) in super::ALL {
            let rebuilt = std::fs::read(out.path().join(format!("{name}.wasm"))).unwrap();
            assert!(rebuilt == *committed, "{name}.wasm does not match its sources: run canisters/build.sh");
        }
    }

    /// Rebuilding the Motoko canisters with the pinned compiler reproduces
    /// the committed modules, whenever node and the compiler are installed
    /// (`npm ci --prefix canisters/motoko`; CI does).
    #[test]
    fn committed_motoko_wasm_matches_the_sources() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
        if !node || !here.join("motoko/node_modules/motoko").exists() {
            eprintln!("node or the motoko compiler not installed: run npm ci --prefix canisters/motoko to compare");
            return;
        }
        let out = tempfile::tempdir().unwrap();
        let status = Command::new("node").arg(here.join("motoko/build.js")).arg(out.path()).status().unwrap();
        assert!(status.success(), "motoko/build.js failed");
        for (name, committed) in super::motoko::ALL {
            let rebuilt = std::fs::read(out.path().join(format!("{name}.wasm"))).unwrap();
            assert!(
                rebuilt == *committed,
                "motoko/{name}.wasm does not match its source: run canisters/motoko/build.js"
            );
        }
    }
}
