//! Byte counts for people: binary units, two decimals above bytes.

const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// `512 B`, `1.50 KiB`, ... up to TiB (larger counts stay in TiB). The
/// unit is chosen after rounding, so 1,048,575 bytes reads `1.00 MiB`,
/// never `1024.00 KiB`.
pub fn human(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut value = bytes as f64;
    while unit < UNITS.len() - 1 && (value * 100.0).round() / 100.0 >= 1024.0 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// The biggest unit not above `bytes` (B for 0), and its size in bytes:
/// the unit an axis up to `bytes` is labelled in.
pub fn unit_for(bytes: u64) -> (&'static str, u64) {
    let mut unit = 0;
    while unit < UNITS.len() - 1 && bytes >> (10 * (unit + 1)) > 0 {
        unit += 1;
    }
    (UNITS[unit], 1 << (10 * unit))
}

/// Exact bytes for people: `3,758,097,408`.
pub fn grouped(bytes: u64) -> String {
    let digits = bytes.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A share of the grand total, as a percentage with two decimals.
pub fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_units_two_decimals() {
        let cases: [(u64, &str); 12] = [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1.00 KiB"),
            (1536, "1.50 KiB"),
            (1_048_575, "1.00 MiB"),
            (1_048_576, "1.00 MiB"),
            (5 * 1024 * 1024 * 1024 + 1024 * 1024 * 1024 / 4, "5.25 GiB"),
            (1 << 40, "1.00 TiB"),
            (3 << 50, "3072.00 TiB"),
            (u64::MAX, "16777216.00 TiB"),
            (1_023_994, "999.99 KiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human(bytes), want, "{bytes} bytes");
        }
    }

    #[test]
    fn axis_units() {
        assert_eq!(unit_for(0), ("B", 1));
        assert_eq!(unit_for(1023), ("B", 1));
        assert_eq!(unit_for(1024), ("KiB", 1024));
        assert_eq!(unit_for(3 << 30), ("GiB", 1 << 30));
        assert_eq!(unit_for((1 << 40) - 1), ("GiB", 1 << 30));
        assert_eq!(unit_for(u64::MAX), ("TiB", 1 << 40));
    }

    #[test]
    fn grouped_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(3_758_097_408), "3,758,097,408");
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(0.0), "0.00%");
        assert_eq!(percent(1.0), "100.00%");
        assert_eq!(percent(1.0 / 3.0), "33.33%");
    }
}
