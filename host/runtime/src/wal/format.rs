//! The on-disk format of the write-ahead log: segment headers and record
//! frames (see the module docs of `wal` for the layout).

use sha2::{Digest, Sha256};

/// Magic bytes opening every segment: `CHLOG` and the format version.
pub(super) const SEGMENT_MAGIC: &[u8; 8] = b"CHLOG001";
const MAGIC_PREFIX: &[u8; 5] = b"CHLOG";

/// The format version a segment was written in, if it is a segment of
/// another version than this build's (a version is three digits; anything
/// else is damage, reported as such).
pub(super) fn other_version(bytes: &[u8]) -> Option<String> {
    let magic = bytes.get(..SEGMENT_MAGIC.len())?;
    let version = magic.strip_prefix(MAGIC_PREFIX.as_slice())?;
    (magic != SEGMENT_MAGIC && version.iter().all(u8::is_ascii_digit))
        .then(|| String::from_utf8_lossy(version).into_owned())
}
/// Length of a segment header: magic, first height, previous chain, crc32c.
pub(super) const HEADER_LEN: u64 = 8 + 8 + 32 + 4;
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"CHRD");
/// Length of a frame's header: magic, payload length, crc32c.
pub(super) const FRAME_HEADER: u64 = 12;
/// Length of the payload before the body: height and previous chain.
const PAYLOAD_PREFIX: u64 = 40;
/// Records larger than this are refused (and a length field claiming more
/// is damage, not a record).
pub const MAX_RECORD_BYTES: u64 = 1 << 30;

/// The chain value of a record: SHA-256 of its payload.
pub type Chain = [u8; 32];

/// A segment's header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct SegmentHeader {
    /// Height of the segment's first record.
    pub(super) first_height: u64,
    /// Chain value of the record before it.
    pub(super) prev_chain: Chain,
}

impl SegmentHeader {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(SEGMENT_MAGIC);
        header.extend_from_slice(&self.first_height.to_le_bytes());
        header.extend_from_slice(&self.prev_chain);
        header.extend_from_slice(&crc32c::crc32c(&header).to_le_bytes());
        header
    }

    /// The header at the start of `bytes`, if it is intact.
    pub(super) fn parse(bytes: &[u8]) -> Option<SegmentHeader> {
        let header = bytes.get(..HEADER_LEN as usize)?;
        let (body, crc) = header.split_at(HEADER_LEN as usize - 4);
        if &body[..8] != SEGMENT_MAGIC || crc32c::crc32c(body).to_le_bytes() != crc {
            return None;
        }
        Some(SegmentHeader {
            first_height: u64::from_le_bytes(body[8..16].try_into().ok()?),
            prev_chain: body[16..48].try_into().ok()?,
        })
    }
}

/// A record's payload: its height, the previous record's chain value, and
/// its body.
pub(super) fn payload(height: u64, prev_chain: &Chain, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_PREFIX as usize + body.len());
    payload.extend_from_slice(&height.to_le_bytes());
    payload.extend_from_slice(prev_chain);
    payload.extend_from_slice(body);
    payload
}

/// The frame holding `payload`.
pub(super) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER as usize + payload.len());
    frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The chain value of a payload.
pub(super) fn chain(payload: &[u8]) -> Chain {
    Sha256::digest(payload).into()
}

/// An intact frame, as found in a segment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Frame {
    pub(super) height: u64,
    pub(super) prev_chain: Chain,
    /// Where the body starts in the segment, and its length.
    pub(super) body_offset: u64,
    pub(super) body_len: u64,
    /// This record's own chain value.
    pub(super) chain: Chain,
}

impl Frame {
    /// Offset just past the frame.
    pub(super) fn end(&self) -> u64 {
        self.body_offset + self.body_len
    }

    /// Parse the frame at `offset` of `bytes`, or say why it is not an
    /// intact frame.
    pub(super) fn parse(bytes: &[u8], offset: u64) -> Result<Frame, String> {
        let at = offset as usize;
        let header = bytes.get(at..at + FRAME_HEADER as usize).ok_or("the record header is cut short")?;
        let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        if word(0) != FRAME_MAGIC {
            return Err("no record starts here (bad magic)".into());
        }
        let len = u64::from(word(4));
        if !(PAYLOAD_PREFIX..=MAX_RECORD_BYTES).contains(&len) {
            return Err(format!("implausible record length {len}"));
        }
        let start = at + FRAME_HEADER as usize;
        let payload = bytes.get(start..start + len as usize).ok_or("the record is cut short")?;
        if crc32c::crc32c(payload) != word(8) {
            return Err("the record's checksum does not match".into());
        }
        Ok(Frame {
            height: u64::from_le_bytes(payload[..8].try_into().expect("8 bytes")),
            prev_chain: payload[8..40].try_into().expect("32 bytes"),
            body_offset: start as u64 + PAYLOAD_PREFIX,
            body_len: len - PAYLOAD_PREFIX,
            chain: chain(payload),
        })
    }
}

/// Whether an intact frame starts anywhere after `offset`: if so, damage at
/// `offset` is not a torn tail.
pub(super) fn intact_frame_after(bytes: &[u8], offset: u64) -> bool {
    let magic = FRAME_MAGIC.to_le_bytes();
    (offset as usize + 1..bytes.len().saturating_sub(3))
        .filter(|&i| bytes[i..i + 4] == magic)
        .any(|i| Frame::parse(bytes, i as u64).is_ok())
}
