//! Internet checksum arithmetic (RFC 1071): one's-complement sums of 16-bit big-endian
//! words, folding, and the incremental update that lets the generator change a packet's
//! measurement stamp without summing the whole packet again.

/// Sum of `bytes` as big-endian 16-bit words (an odd last byte is padded with zero).
pub fn sum(bytes: &[u8]) -> u32 {
    let mut s = 0u32;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        s += u32::from(*b) << 8;
    }
    s
}

/// Folds a 32-bit sum to 16 bits with end-around carry.
pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum to store for data whose words sum to `s` (checksum field counted as zero).
pub fn finish(s: u32) -> u16 {
    !fold(s)
}

/// Sum of an IPv4 pseudo-header for an L4 segment of `len` bytes of protocol `proto`.
pub fn pseudo_header(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    sum(&src) + sum(&dst) + u32::from(proto) + len as u32
}

/// Adds `bytes`, found `offset` bytes into the checksummed data, to the folded sum `s`:
/// data at an odd offset contributes its byte-swapped sum.
pub fn add_at(s: u16, offset: usize, bytes: &[u8]) -> u16 {
    let mut part = fold(sum(bytes));
    if offset % 2 == 1 {
        part = part.swap_bytes();
    }
    fold(u32::from(s) + u32::from(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_matches_full_sum_at_any_offset() {
        let data: Vec<u8> = (0..61u8).map(|i| i.wrapping_mul(37)).collect();
        for off in 0..40 {
            let mut zeroed = data.clone();
            zeroed[off..off + 18].fill(0);
            let base = fold(sum(&zeroed));
            assert_eq!(
                add_at(base, off, &data[off..off + 18]),
                fold(sum(&data)),
                "{off}"
            );
        }
    }
}
