//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Ones'-complement sum of `data` folded to 16 bits, added to `initial` (not inverted).
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = initial as u64;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(super::be32(c, 0));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        acc += (rest[i] as u64) << 8;
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit ones'-complement accumulator to 16 bits (two end-around carries always
/// suffice: the first leaves at most 0x1fffe).
#[inline(always)]
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    ((acc & 0xffff) + (acc >> 16)) as u16
}

/// The checksum field value for `data` (checksum field itself zeroed or included as zero).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// True if `data` (checksum field included) verifies.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    fold(sum(data, 0)) == 0xffff
}

/// [`verify`] for exactly a 20-byte IPv4 header without options: five 32-bit words
/// added in 64 bits, no loop (the common case on the forwarding path). The words are read
/// in native byte order: a ones'-complement sum is byte-order independent (RFC 1071 §2),
/// and "all ones" reads the same either way.
#[inline(always)]
pub fn verify20(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes(super::array(h, i)));
    // Five 32-bit words fit in 35 bits: fold the carries into 32 bits, then to 16.
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    fold(acc as u32) == 0xffff
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word changed from `old` to `new`.
#[inline(always)]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    apply_delta(csum, delta16(old, new))
}

/// The change of one 16-bit word from `old` to `new`, as a ones'-complement addend for
/// [`apply_delta`]. Deltas of several words add up: up to 32768 of them (at most
/// 0x1fffe each) fit, with the checksum, in 32 bits.
#[inline(always)]
pub fn delta16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// [`delta16`] of a 32-bit word (an IPv4 address): both halves.
#[inline(always)]
pub fn delta32(old: u32, new: u32) -> u32 {
    delta16((old >> 16) as u16, (new >> 16) as u16) + delta16(old as u16, new as u16)
}

/// RFC 1624 eqn. 3 for any number of changed words at once: the new checksum after the
/// changes whose [`delta16`]s add up to `delta`. One fold instead of one per word.
#[inline(always)]
pub fn apply_delta(csum: u16, delta: u32) -> u16 {
    !fold(u32::from(!csum) + delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real IPv4 header (from the keepalived VRRPv2 capture in shared/testdata).
    const HDR: [u8; 20] = [
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0xd0, 0x44, 0x0a, 0x4d, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x12,
    ];

    #[test]
    fn real_header_verifies_and_recomputes() {
        assert!(verify(&HDR));
        let mut h = HDR;
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xd044);
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        // Decrement TTL over many values and compare with a full recompute each time.
        let mut h = HDR;
        for _ in 0..254 {
            let old = u16::from_be_bytes([h[8], h[9]]);
            h[8] -= 1;
            let new = u16::from_be_bytes([h[8], h[9]]);
            let c = update16(u16::from_be_bytes([h[10], h[11]]), old, new);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            assert!(verify(&h), "ttl {}", h[8]);
            let mut z = h;
            z[10] = 0;
            z[11] = 0;
            assert_eq!(checksum(&z), c);
        }
    }

    #[test]
    fn verify20_agrees_with_verify() {
        let mut h = HDR;
        for i in 0..20 {
            for bit in 0..8 {
                h[i] ^= 1 << bit;
                assert_eq!(verify20(&h), verify(&h), "byte {i} bit {bit}");
                h[i] ^= 1 << bit;
            }
        }
        assert!(verify20(&HDR));
        let zero = [0u8; 20];
        assert_eq!(verify20(&zero), verify(&zero));
        let ones = [0xffu8; 20];
        assert_eq!(verify20(&ones), verify(&ones));
    }

    #[test]
    fn one_delta_for_several_words_matches_a_full_recompute() {
        // Change three words of a real header at once (an address and the TTL/protocol
        // word) to pseudo-random values, many times; the checksum from the summed deltas
        // must verify and equal the recomputed one.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut h = HDR;
        for round in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // The source address as one 32-bit change, the TTL/protocol word as a 16-bit one.
            let old_src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
            let new_src = x as u32;
            let old_ttl = u16::from_be_bytes([h[8], h[9]]);
            let new_ttl = (x >> 32) as u16;
            let delta = delta32(old_src, new_src) + delta16(old_ttl, new_ttl);
            h[12..16].copy_from_slice(&new_src.to_be_bytes());
            h[8..10].copy_from_slice(&new_ttl.to_be_bytes());
            let c = apply_delta(u16::from_be_bytes([h[10], h[11]]), delta);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            assert!(verify(&h), "round {round}");
            let mut z = h;
            z[10] = 0;
            z[11] = 0;
            let full = checksum(&z);
            // 0x0000 and 0xffff are the same ones'-complement value.
            assert!(c == full || (c, full) == (0xffff, 0) || (c, full) == (0, 0xffff));
        }
        // No change at all leaves the checksum as it was.
        assert_eq!(apply_delta(0xd044, 0), 0xd044);
    }

    #[test]
    fn odd_length_is_padded() {
        assert_eq!(sum(&[0x01], 0), 0x0100);
        assert_eq!(checksum(&[0xff, 0xff]), 0);
    }
}
