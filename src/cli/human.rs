//! How the CLI writes sizes and times for people: binary units
//! (`12.3 MiB`) and local wall-clock times (`2026-12-05 19:02:27 IST`).
//! `--json` keeps exact bytes and RFC 3339 UTC instants for scripts.

use bharatvoice_store::Timestamp;

/// Bytes in the largest binary unit that keeps the number at least 1.
pub(crate) fn size(bytes: u64) -> String {
    bharatvoice_store::ByteSize(bytes).to_string()
}

/// An instant in the local time zone (`TZ`, else the system's, else UTC),
/// to the second, with the zone's abbreviation. An instant no calendar
/// shows (beyond the year 9999) is written as the store writes it.
pub(crate) fn time(t: Timestamp) -> String {
    time_in(t, jiff::tz::TimeZone::system())
}

fn time_in(t: Timestamp, zone: jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_microsecond(t.as_micros()) {
        Ok(ts) => ts
            .to_zoned(zone)
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

/// [`time`] of an instant as JSON writes it (a running store's answer);
/// any other value as it is.
pub(crate) fn time_value(v: &serde_json::Value) -> String {
    match v.as_str().map(str::parse::<Timestamp>) {
        Some(Ok(t)) => time(t),
        _ => super::remote::scalar(v),
    }
}

/// An enum as the CLI spells it: its `--json` name (`keys_destroyed`),
/// never Rust's (`KeysDestroyed`).
pub(crate) fn spelled(value: impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_string(),
    }
}

/// [`time`] of an optional instant, `-` for none.
pub(crate) fn time_or_dash(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_string(), time)
}

#[cfg(test)]
mod tests {
    #[test]
    fn enums_are_spelled_as_json_names_them() {
        assert_eq!(
            super::spelled(bharatvoice_store::ErasureStage::KeysDestroyed),
            "keys_destroyed"
        );
    }

    #[test]
    fn times_are_whole_seconds_with_a_zone() {
        let t: bharatvoice_store::Timestamp = "2026-12-05T13:32:27.9Z".parse().unwrap();
        let india = jiff::tz::TimeZone::posix("IST-5:30").unwrap();
        assert_eq!(super::time_in(t, india), "2026-12-05 19:02:27 IST");
        assert_eq!(
            super::time_in(t, jiff::tz::TimeZone::UTC),
            "2026-12-05 13:32:27 UTC"
        );
        assert_eq!(super::time_or_dash(None), "-");
        let far = bharatvoice_store::Timestamp::MAX;
        assert_eq!(super::time(far), far.to_string());
    }
}
