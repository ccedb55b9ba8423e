//! Time as levee writes it: RFC 3339 UTC with milliseconds, and the wall clock.
//! Everything below the binary's edge takes time as an argument; these only
//! format it or read it at the edge.

use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC with milliseconds, from nanoseconds since the epoch.
pub fn rfc3339_ms(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Milliseconds since the epoch, from the system clock.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
