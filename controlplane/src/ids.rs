//! Random ids and secrets, from the operating system's random source.

/// `len` bytes from the OS random source (`getrandom(2)`). Should the kernel
/// refuse (it does not on any supported Linux), bytes of the process's
/// randomly seeded hasher stand in rather than zeros.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    if getrandom::getrandom(&mut buf).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    buf
}

/// `prefix` and `bytes` random bytes in hex (ids, generated secrets).
pub fn random_hex(prefix: &str, bytes: usize) -> String {
    format!("{prefix}{}", hex(&random_bytes(bytes)))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_asked_length_and_differ() {
        let a = random_hex("nd_", 6);
        let b = random_hex("nd_", 6);
        assert_eq!(a.len(), 3 + 12);
        assert!(a[3..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(hex(&[0, 0xab, 7]), "00ab07");
    }
}
