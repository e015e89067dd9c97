//! Sizes as people read them: the store's messages (health details, the
//! CLI's tables) write `41.3 GiB` rather than `44344807424`. Figures for
//! programs stay exact byte counts in the reports themselves.

use std::fmt;

/// A byte count that displays in the largest binary unit keeping the
/// number at least 1, to one decimal: `512 B`, `1.0 KiB`, `3.5 GiB`.
///
/// ```
/// use bharatvoice_store::ByteSize;
/// assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
/// assert_eq!(ByteSize(64 << 20).to_string(), "64.0 MiB");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::ByteSize;

    #[test]
    fn sizes_read_in_binary_units() {
        let text = |n| ByteSize(n).to_string();
        assert_eq!(text(0), "0 B");
        assert_eq!(text(1023), "1023 B");
        assert_eq!(text(1024), "1.0 KiB");
        assert_eq!(text(5 << 20), "5.0 MiB");
        assert_eq!(text(3 << 30 | 1 << 29), "3.5 GiB");
        assert_eq!(text(u64::MAX), "16384.0 PiB");
    }
}
