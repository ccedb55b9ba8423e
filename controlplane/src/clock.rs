//! Time as levee writes it: RFC 3339 UTC with milliseconds, and the wall clock.
//! Everything below the binary's edge takes time as an argument; these only
//! format it or read it at the edge.

use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC with milliseconds, from nanoseconds since the epoch.
pub fn rfc3339_ms(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// RFC 3339 UTC to the second (incident event payloads), from nanoseconds
/// since the epoch.
pub fn rfc3339_s(ns: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Nanoseconds since the epoch from an RFC 3339 time (`Z` or no zone: UTC).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
}

/// Seconds since the epoch, from the system clock.
pub fn wall_s() -> u64 {
    wall_ms() / 1000
}

/// Milliseconds since the epoch, from the system clock.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_and_read_back() {
        let ns = 1_773_843_728_123_000_000;
        assert_eq!(rfc3339_ms(ns), "2026-03-18T14:22:08.123Z");
        assert_eq!(rfc3339_s(ns), "2026-03-18T14:22:08Z");
        assert_eq!(parse_rfc3339("2026-03-18T14:22:08.123Z"), Some(ns));
        assert_eq!(
            parse_rfc3339("2026-03-18T14:22:08Z"),
            Some(ns - 123_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
