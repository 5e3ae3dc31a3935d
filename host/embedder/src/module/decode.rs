//! Modules as installers send them: raw wasm, or gzip-compressed wasm (as
//! dfx and the IC accept). Decompression is bounded: a small archive that
//! expands without limit is refused as soon as it passes the limit.

use std::borrow::Cow;
use std::io::Read;

use super::ModuleError;

/// How gzip data starts (magic, then the deflate method).
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// The wasm in `bytes`: `bytes` itself, or its decompression if it is
/// gzip. At most `max_bytes` of wasm are produced.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Cow<'_, [u8]>, ModuleError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut wasm = Vec::new();
    let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut wasm)
        .map_err(|e| ModuleError::Invalid(format!("it is gzip data that does not decompress: {e}")))?;
    if wasm.len() > max_bytes {
        return Err(ModuleError::TooLarge { size: wasm.len(), limit: max_bytes });
    }
    Ok(Cow::Owned(wasm))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_is_decompressed_within_the_limit() {
        let wasm = b"\0asm\x01\0\0\0".to_vec();
        assert_eq!(decode(&wasm, 100).unwrap(), wasm.as_slice());
        assert_eq!(decode(&gzip(&wasm), 100).unwrap(), wasm.as_slice());
        // A bomb: 64 MiB of zeros in a few KiB, refused at the limit.
        let bomb = gzip(&vec![0; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        assert!(
            matches!(decode(&bomb, 1 << 20), Err(ModuleError::TooLarge { size, limit: 1048576 }) if size == 1048577)
        );
        let mut broken = gzip(&wasm);
        broken.truncate(12);
        assert!(matches!(decode(&broken, 100), Err(ModuleError::Invalid(_))));
    }
}
