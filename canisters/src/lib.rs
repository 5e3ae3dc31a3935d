//! Example canisters, written in C and compiled to wasm32 with clang-19.
//!
//! The built `.wasm` files are committed under `wasm/`, so nothing here needs
//! clang to build or test; `build.sh` rebuilds them. See `README.md` in this
//! folder for each canister's methods.
