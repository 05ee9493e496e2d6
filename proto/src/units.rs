//! Human-readable sizes and durations for command-line flags ("64MiB", "10G", "500ms", "3s").

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A byte count parsed from forms like `1048576`, `64MiB`, `10G` or `1.5 GiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| Size(b.as_u64()))
            .map_err(|e| format!("invalid size {s:?}: {e}"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().iec())
    }
}

/// A duration parsed from forms like `500ms`, `3s` or `1m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadableDuration(pub Duration);

impl FromStr for ReadableDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(ReadableDuration)
            .map_err(|e| format!("invalid duration {s:?}: {e}"))
    }
}

impl fmt::Display for ReadableDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("1MiB".parse::<Size>().unwrap(), Size(1 << 20));
        assert_eq!("64 MiB".parse::<Size>().unwrap(), Size(64 << 20));
        assert_eq!("10GiB".parse::<Size>().unwrap(), Size(10 << 30));
        assert_eq!("4096".parse::<Size>().unwrap(), Size(4096));
        assert!("ten".parse::<Size>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            "500ms".parse::<ReadableDuration>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(
            "3s".parse::<ReadableDuration>().unwrap().0,
            Duration::from_secs(3)
        );
        assert_eq!(
            "1m".parse::<ReadableDuration>().unwrap().0,
            Duration::from_secs(60)
        );
        assert!("soon".parse::<ReadableDuration>().is_err());
    }
}
