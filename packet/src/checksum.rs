//! Internet checksums: full computation and RFC 1624 incremental updates.
//!
//! NAT rewrites change a few 16-bit words of a header; RFC 1624 eqn. 3,
//! `HC' = ~(~HC + ~m + m')`, updates the checksum from the old and new
//! words alone, so no rewrite touches the payload.

/// Adds `data` as big-endian 16-bit words to a one's-complement sum
/// (unfolded); an odd last byte is padded with zero.
#[inline]
pub fn sum_words(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

/// Folds a 32-bit sum to 16 bits, with end-around carry.
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data` (the value to store in a header whose
/// checksum field is zero in `data`).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(0, data))
}

/// An incremental checksum update: the old and new values of every
/// changed 16-bit word, accumulated, then applied to a stored checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChecksumDelta {
    sum: u32,
}

impl ChecksumDelta {
    /// No change yet.
    #[inline]
    pub const fn new() -> Self {
        ChecksumDelta { sum: 0 }
    }

    /// A 16-bit word changed from `old` to `new`.
    #[inline]
    pub fn word(mut self, old: u16, new: u16) -> Self {
        self.sum += u32::from(!old) + u32::from(new);
        self
    }

    /// A 32-bit field (an IPv4 address) changed from `old` to `new`.
    #[inline]
    pub fn dword(self, old: u32, new: u32) -> Self {
        self.word((old >> 16) as u16, (new >> 16) as u16)
            .word(old as u16, new as u16)
    }

    /// The stored checksum `check` after the change (RFC 1624, eqn. 3).
    #[inline]
    pub fn apply(self, check: u16) -> u16 {
        !fold(u32::from(!check) + self.sum)
    }

    /// As [`ChecksumDelta::apply`], for a UDP checksum: 0 means "no
    /// checksum" and stays 0, and a computed 0 is sent as 0xffff (RFC 768).
    #[inline]
    pub fn apply_udp(self, check: u16) -> u16 {
        if check == 0 {
            return 0;
        }
        match self.apply(check) {
            0 => 0xffff,
            c => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071's example header words.
    #[test]
    fn full_checksum_matches_rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn incremental_equals_recomputed() {
        let cases: &[(u32, u32)] = &[
            (0x0a00_0001, 0x0a00_0002),
            (0xc0a8_0101, 0x0a01_0203),
            (0xffff_ffff, 0x0000_0000),
            (0, 0xffff_0000),
        ];
        for &(old, new) in cases {
            let mut hdr = [
                0x45u8, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 9, 0, 0, 0, 0,
            ];
            hdr[16..20].copy_from_slice(&old.to_be_bytes());
            let c0 = checksum(&hdr);
            hdr[16..20].copy_from_slice(&new.to_be_bytes());
            let c1 = checksum(&hdr);
            assert_eq!(
                ChecksumDelta::new().dword(old, new).apply(c0),
                c1,
                "{old:x}->{new:x}"
            );
        }
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        assert_eq!(ChecksumDelta::new().word(1, 2).apply_udp(0), 0);
    }
}
