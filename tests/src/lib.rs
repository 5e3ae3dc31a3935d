//! End-to-end tests of canister-host: whole canisters run through the host,
//! across real processes and restarts. The tests live in `tests/tests/`.

#![deny(unsafe_code)]
