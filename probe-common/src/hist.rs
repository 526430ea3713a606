//! Log-linear histogram layout (HDR-like) used in the kernel and decoded in user space.
//!
//! Values below `2^SUB_BITS` ns get one bucket each. Above, every power of two is split into
//! `2^SUB_BITS` equal sub-buckets, so a bucket's width is at most 1/16 = 6.25% of its lower
//! bound. Values at or above `2^MAX_MSB_EXCL` ns (about 18 minutes) land in the last bucket.

/// Linear sub-buckets per power of two: 2^4 = 16.
pub const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Highest power of two tracked exclusively: 2^40 ns ≈ 1100 s.
pub const MAX_MSB_EXCL: u32 = 40;
/// Number of buckets: the 16 exact ones, 16 per power of two from 2^4 to 2^39, and one
/// overflow bucket for everything from 2^40 ns up.
pub const NUM_BUCKETS: usize = (SUB as usize) * ((MAX_MSB_EXCL - SUB_BITS) as usize + 1) + 1;

/// Index of the most significant set bit, without a loop (the verifier prefers straight code).
#[inline(always)]
pub const fn log2(v: u64) -> u32 {
    let mut v = v;
    let mut r = 0u32;
    if v >> 32 != 0 {
        v >>= 32;
        r += 32;
    }
    if v >> 16 != 0 {
        v >>= 16;
        r += 16;
    }
    if v >> 8 != 0 {
        v >>= 8;
        r += 8;
    }
    if v >> 4 != 0 {
        v >>= 4;
        r += 4;
    }
    if v >> 2 != 0 {
        v >>= 2;
        r += 2;
    }
    if v >> 1 != 0 {
        r += 1;
    }
    r
}

/// Bucket for a value in nanoseconds. Always `< NUM_BUCKETS`.
#[inline(always)]
pub const fn bucket_index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = log2(v);
    if msb >= MAX_MSB_EXCL {
        return NUM_BUCKETS - 1;
    }
    let sub = (v >> (msb - SUB_BITS)) & (SUB - 1);
    let idx = ((msb - SUB_BITS + 1) as u64) * SUB + sub;
    idx as usize
}

/// Smallest value that falls in bucket `i`.
pub const fn bucket_lower_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let major = i / SUB; // >= 1
    let sub = i % SUB;
    let msb = major + SUB_BITS as u64 - 1;
    (1u64 << msb) + (sub << (msb - SUB_BITS as u64))
}

/// Largest value that falls in bucket `i` (inclusive).
pub const fn bucket_upper_bound(i: usize) -> u64 {
    if i + 1 >= NUM_BUCKETS {
        return u64::MAX;
    }
    bucket_lower_bound(i + 1) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        assert_eq!(bucket_lower_bound(0), 0);
        for i in 0..NUM_BUCKETS - 1 {
            let lo = bucket_lower_bound(i);
            let hi = bucket_upper_bound(i);
            assert!(lo <= hi, "bucket {i}: {lo} > {hi}");
            assert_eq!(bucket_index(lo), i, "lower bound of {i}");
            assert_eq!(bucket_index(hi), i, "upper bound of {i}");
            assert_eq!(bucket_lower_bound(i + 1), hi + 1);
        }
    }

    #[test]
    fn relative_width_is_bounded() {
        for i in SUB as usize..NUM_BUCKETS - 1 {
            let lo = bucket_lower_bound(i) as f64;
            let hi = bucket_upper_bound(i) as f64;
            assert!((hi + 1.0 - lo) / lo <= 1.0 / SUB as f64 + 1e-12, "bucket {i}");
        }
    }

    #[test]
    fn large_values_clamp() {
        assert_eq!(bucket_index(u64::MAX), NUM_BUCKETS - 1);
        assert_eq!(bucket_index(1 << 40), NUM_BUCKETS - 1);
        assert_eq!(bucket_index((1 << 40) - 1), NUM_BUCKETS - 2);
        for v in [0u64, 1, 15, 16, 17, 31, 32, 1000, 123_456_789] {
            let i = bucket_index(v);
            assert!(bucket_lower_bound(i) <= v && v <= bucket_upper_bound(i), "{v}");
        }
    }
}
