//! Real canisters built by the IC's toolchains (`canisters/fixtures/`,
//! copied unmodified from the public `dfinity/examples` repository):
//! Internet Identity and the certified asset canister install and answer
//! their update and query methods, and survive a restart. (Their
//! certification paths need certificates, which the HTTP interface
//! brings.)

use std::path::PathBuf;

use candid::{CandidType, Decode, Deserialize, Encode};
use canister_host::*;
use sha2::{Digest, Sha256};

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);

fn config() -> HostConfig {
    HostConfig {
        checkpoint_interval: 1_000_000,
        time: TimeSource::Deterministic { start: 1_700_000_000_000_000_000, step: 1_000 },
        ..HostConfig::default()
    }
}

/// A fixture's bytes, checked against the SHA-256 its README records.
fn fixture(name: &str, sha256: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../canisters/fixtures").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha256, "{name} was modified");
    bytes
}

#[derive(CandidType, Deserialize, Debug, PartialEq)]
struct InternetIdentityInit {
    assigned_user_number_range: (u64, u64),
}

#[derive(CandidType, Deserialize, Debug, PartialEq)]
struct InternetIdentityStats {
    users_registered: u64,
    assigned_user_number_range: (u64, u64),
}

#[derive(CandidType, Deserialize, Debug)]
struct DeviceData {
    pubkey: Vec<u8>,
    alias: String,
    credential_id: Option<Vec<u8>>,
}

#[test]
fn internet_identity_installs_salts_itself_with_raw_rand_and_answers() {
    let wasm = fixture("internet_identity.wasm", "5cd126bb27dbaff9d291288db7dda3fcc82721f8117fa0d1e341646e2094c6a7");
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let id = host.create_canister(OWNER, vec![], Some("ii".into())).unwrap();
    let init = Some(InternetIdentityInit { assigned_user_number_range: (10_000, 20_000) });
    host.install_code(OWNER, id, InstallMode::Install, wasm, Encode!(&init).unwrap()).unwrap();
    let stats = |host: &Host| {
        let reply = host.query_call(id, OWNER, "stats", Encode!().unwrap()).unwrap();
        Decode!(&reply, InternetIdentityStats).unwrap()
    };
    assert_eq!(
        stats(&host),
        InternetIdentityStats { users_registered: 0, assigned_user_number_range: (10_000, 20_000) }
    );
    // init_salt awaits the management canister's raw_rand.
    host.update_call(id, OWNER, "init_salt", Encode!().unwrap()).unwrap();
    // A second salt is refused by the canister itself.
    assert!(host.update_call(id, OWNER, "init_salt", Encode!().unwrap()).is_err());
    let devices = host.query_call(id, OWNER, "lookup", Encode!(&10_000u64).unwrap()).unwrap();
    assert!(Decode!(&devices, Vec<DeviceData>).unwrap().is_empty());
    let digest = host.state_digest().unwrap();
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest);
    assert_eq!(stats(&host).assigned_user_number_range, (10_000, 20_000));
}

#[derive(CandidType, Deserialize)]
struct StoreArg {
    key: String,
    content_type: String,
    content_encoding: String,
    content: Vec<u8>,
    sha256: Option<Vec<u8>>,
}

#[derive(CandidType, Deserialize)]
struct GetArg {
    key: String,
    accept_encodings: Vec<String>,
}

#[derive(CandidType, Deserialize, Debug)]
struct Asset {
    content: Vec<u8>,
    content_type: String,
    content_encoding: String,
    sha256: Option<Vec<u8>>,
    total_length: candid::Nat,
}

#[test]
fn the_asset_canister_installs_gzipped_stores_and_serves_assets() {
    let wasm = fixture("assetstorage.wasm.gz", "e7866e1949e3688a78d8d29bd63e1c13cd6bfb8fbe29444fa606a20e0b1e33f0");
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let id = host.create_canister(OWNER, vec![], Some("assets".into())).unwrap();
    // Installed gzip-compressed, as dfx ships it.
    host.install_code(OWNER, id, InstallMode::Install, wasm, Encode!().unwrap()).unwrap();
    let content = b"<h1>hello from the host</h1>".to_vec();
    let store = StoreArg {
        key: "/index.html".into(),
        content_type: "text/html".into(),
        content_encoding: "identity".into(),
        content: content.clone(),
        sha256: Some(Sha256::digest(&content).to_vec()),
    };
    host.update_call(id, OWNER, "store", Encode!(&store).unwrap()).unwrap();
    // Only authorized principals may store.
    assert!(host.update_call(id, Principal::anonymous(), "store", Encode!(&store).unwrap()).is_err());
    let get = |host: &Host| {
        let arg = GetArg { key: "/index.html".into(), accept_encodings: vec!["identity".into()] };
        Decode!(&host.query_call(id, OWNER, "get", Encode!(&arg).unwrap()).unwrap(), Asset).unwrap()
    };
    let asset = get(&host);
    assert_eq!((asset.content, asset.content_type.as_str()), (content.clone(), "text/html"));
    assert_eq!(asset.sha256, Some(Sha256::digest(&content).to_vec()));
    let version = Decode!(&host.query_call(id, OWNER, "api_version", Encode!().unwrap()).unwrap(), u16).unwrap();
    assert!(version >= 1);
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(get(&host).content, content, "the asset survived a restart");
}
