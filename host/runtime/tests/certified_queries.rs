//! Queries answered outside consensus can read a certificate of their
//! canister's certified data (`ic0.data_certificate_*`), made by whoever
//! holds a root key (the HTTP server) from the exact state the query runs on.

use std::sync::{Arc, Mutex};

use candid::{Decode, Encode, Principal};
use canister_host::{Certifier, Host, HostConfig, InstallMode};

#[test]
fn a_certified_query_reads_the_certificate_of_the_state_it_runs_on() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::open(tmp.path(), HostConfig::default()).unwrap();
    let owner = Principal::anonymous();
    let id = host.create_canister(owner, vec![], None).unwrap();
    host.install_code(owner, id, InstallMode::Install, canisters::SYSAPI.to_vec(), vec![]).unwrap();
    host.update_call(id, owner, "set_certified_data", Encode!(&vec![5u8; 32]).unwrap()).unwrap();

    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let certifier: Certifier = Arc::new(move |canister: Principal, data: &[u8]| {
        *record.lock().unwrap() = Some((canister, data.to_vec()));
        b"a certificate".to_vec()
    });
    let reply = host.query_call_certified(id, owner, "certificate", Encode!().unwrap(), Some(certifier)).unwrap();
    assert_eq!(Decode!(&reply, Vec<u8>).unwrap(), b"a certificate");
    // It certified the canister's data as the query saw it.
    assert_eq!(seen.lock().unwrap().clone(), Some((id, vec![5u8; 32])));

    // Without a certifier (a plain query) there is none.
    let reply = host.query_call(id, owner, "certificate_present", Encode!().unwrap()).unwrap();
    assert_eq!(Decode!(&reply, u32).unwrap(), 0);
}
