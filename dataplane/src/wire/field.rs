//! Byte-range helpers shared by the header views.

pub type Field = core::ops::Range<usize>;

/// A big-endian u16 at `at` (callers have checked the length).
#[inline(always)]
pub fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// A big-endian u32 at `at` (callers have checked the length).
#[inline(always)]
pub fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Bytes `field` of `data` as a fixed array (callers have checked the length).
#[inline(always)]
pub fn array<const N: usize>(data: &[u8], field: Field) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&data[field]);
    out
}
