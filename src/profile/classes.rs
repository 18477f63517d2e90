//! Size classes: 8 and 16, then every power of two and its quarters
//! (20, 24, 28, 32, 40, 48, 56, 64, 80...): the granularity allocators
//! themselves use, so a histogram shows what a heap's classes would see.

/// The class index of a request of `size` bytes.
pub fn index(size: u64) -> usize {
    match size {
        0..=8 => 0,
        9..=16 => 1,
        _ => {
            let p = 63 - (size - 1).leading_zeros() as usize; // 2^p < size <= 2^(p+1)
            let quarter = ((size - 1) >> (p - 2)) as usize - 4; // 0..=3
            2 + (p - 4) * 4 + quarter
        }
    }
}

/// The largest size in class `i` (its name).
pub fn limit(i: usize) -> u64 {
    match i {
        0 => 8,
        1 => 16,
        _ => {
            let p = (i - 2) / 4 + 4;
            let quarter = ((i - 2) % 4) as u64;
            (1u64 << p) + (quarter + 1) * (1u64 << (p - 2))
        }
    }
}

/// Enough classes for any 64-bit size.
pub const COUNT: usize = 2 + 60 * 4;

/// "64", "1.25K", "2M": a class limit for a table.
pub fn name(bytes: u64) -> String {
    let units = [(1u64 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (unit, suffix) in units {
        if bytes >= unit {
            let v = bytes as f64 / unit as f64;
            return if v.fract() == 0.0 { format!("{}{}", v as u64, suffix) } else { format!("{}{}", v, suffix) };
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_powers_of_two_and_their_quarters() {
        let limits: Vec<u64> = (0..14).map(limit).collect();
        assert_eq!(limits, vec![8, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128]);
        for size in 0..5000u64 {
            let i = index(size);
            assert!(size <= limit(i), "{} in class {}", size, limit(i));
            assert!(i == 0 || size > limit(i - 1), "{} not in the smallest class", size);
        }
        assert!(index(u64::MAX) < COUNT);
        assert_eq!(name(1280), "1.25K");
    }
}
