//! The content hash of a row: blake3 of the row's COPY text form (columns tab-separated, NULL as
//! `\N`, every value in its type's canonical output), truncated to 128 bits. Two rows hash alike
//! exactly when their text forms are equal, so duplicates share a hash and NULLs are ordinary
//! values. 128 bits make an accidental collision among a billion rows about 1 in 10^20.

/// A row's content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RowHash(pub [u8; 16]);

impl RowHash {
    /// The hash as a `bytea` hex literal body (`\x` + 32 hex digits), as COPY text expects it
    /// once its backslash is escaped (see [`crate::poll::mirror::staging_line`]).
    pub fn hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        out
    }

    /// The first 8 bytes as an integer (uniformly distributed: used to index the multiset).
    pub fn prefix(&self) -> u64 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(head)
    }
}

/// Hashes one row given as its COPY text line (without the line terminator).
pub fn hash_row(line: &[u8]) -> RowHash {
    let full = blake3::hash(line);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full.as_bytes()[..16]);
    RowHash(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rows_hash_alike_and_nulls_are_values() {
        assert_eq!(hash_row(b"1\tx"), hash_row(b"1\tx"));
        assert_ne!(hash_row(b"1\tx"), hash_row(b"1\ty"));
        assert_ne!(hash_row(b"1\t\\N"), hash_row(b"1\t"));
        assert_ne!(hash_row(b"\\N\t1"), hash_row(b"1\t\\N"));
    }

    #[test]
    fn hex_round_trip() {
        let h = hash_row(b"abc");
        let hex = h.hex();
        let back: Vec<u8> = (0..16)
            .map(|i| {
                u8::from_str_radix(std::str::from_utf8(&hex[2 * i..2 * i + 2]).unwrap(), 16)
                    .unwrap()
            })
            .collect();
        assert_eq!(back, h.0);
    }
}
