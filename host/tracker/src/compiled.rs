//! Loading a compiled module back from bytes that `Module::serialize`
//! wrote: the one unsafe step of the embedder's compiled-module cache,
//! kept here with the rest of the crate's `unsafe` code.

/// Compiled bytes whose origin the caller vouches for.
pub struct TrustedCompiledModule<'a> {
    bytes: &'a [u8],
}

impl<'a> TrustedCompiledModule<'a> {
    /// Wrap `bytes` for [`load_compiled_module`].
    ///
    /// The caller promises that `bytes` are exactly what
    /// [`wasmtime::Module::serialize`] produced in some process of this
    /// program: written to a file only this program writes (a locked state
    /// directory), replaced only by renaming a complete copy over it, and
    /// checked, as read into `bytes`, against the length and checksum taken
    /// when they were written. Accidental damage fails that check; a file
    /// someone rewrote on purpose is outside what the check covers, as it is
    /// for the state directory's checkpoints.
    pub fn vouched_for(bytes: &'a [u8]) -> TrustedCompiledModule<'a> {
        TrustedCompiledModule { bytes }
    }
}

/// The module in `compiled`. Bytes from another wasmtime version or an
/// incompatible engine configuration are refused with an error (wasmtime
/// checks both), never loaded.
pub fn load_compiled_module(
    engine: &wasmtime::Engine,
    compiled: TrustedCompiledModule<'_>,
) -> wasmtime::Result<wasmtime::Module> {
    // SAFETY: `Module::deserialize` is sound for bytes `Module::serialize`
    // produced, unmodified; it refuses (with an error) those of another
    // wasmtime version or engine configuration. `TrustedCompiledModule`
    // can only be built through `vouched_for`, whose caller promises
    // exactly such bytes, checked against their checksum as they are here.
    #[allow(unsafe_code)]
    unsafe {
        wasmtime::Module::deserialize(engine, compiled.bytes)
    }
}
