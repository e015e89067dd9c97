//! Timestamp text: the exact form every record, log line and JSON document
//! shows, and what parses back.

use proptest::prelude::*;

use super::Timestamp;

fn shown(us: i64) -> String {
    Timestamp::from_micros(us).to_string()
}

#[test]
fn shows_six_fraction_digits_or_none() {
    assert_eq!(shown(0), "1970-01-01T00:00:00Z");
    assert_eq!(shown(1_700_000_000_123_456), "2023-11-14T22:13:20.123456Z");
    assert_eq!(shown(1_700_000_000_100_000), "2023-11-14T22:13:20.100000Z");
    assert_eq!(shown(1_700_000_000_000_001), "2023-11-14T22:13:20.000001Z");
    assert_eq!(shown(-1), "1969-12-31T23:59:59.999999Z");
    assert_eq!(shown(951_782_400_000_000), "2000-02-29T00:00:00Z");
    assert_eq!(
        shown(253_402_207_199_999_999),
        "9999-12-30T21:59:59.999999Z"
    );
    assert_eq!(shown(-377_705_023_201_000_000), "-009999-01-02T01:59:59Z");
    assert_eq!(shown(253_402_207_200_000_001), "253402207200000001");
}

#[test]
fn instants_outside_the_calendar_range_show_as_integers_and_parse_back() {
    for t in [
        Timestamp::MIN,
        Timestamp::MAX,
        Timestamp::from_micros(i64::MAX / 2),
    ] {
        let text = t.to_string();
        assert_eq!(text, t.as_micros().to_string());
        assert_eq!(text.parse::<Timestamp>().unwrap(), t);
    }
}

#[test]
fn parses_offsets_integers_and_long_fractions() {
    let t = Timestamp::from_micros(1_700_000_000_123_456);
    for text in [
        "2023-11-14T22:13:20.123456Z",
        "2023-11-15T03:43:20.123456+05:30",
        "2023-11-14T22:13:20.123456789Z",
        "1700000000123456",
    ] {
        assert_eq!(text.parse::<Timestamp>().unwrap(), t, "{text}");
    }
    assert_eq!(
        "2023-11-14T22:13:20.1Z".parse::<Timestamp>().unwrap(),
        Timestamp::from_micros(1_700_000_000_100_000)
    );
    // A fraction of a microsecond before the epoch is the microsecond before.
    assert_eq!(
        "1969-12-31T23:59:59.9999995Z".parse::<Timestamp>().unwrap(),
        Timestamp::from_micros(-1)
    );
}

#[test]
fn rejects_what_is_not_an_instant() {
    for text in [
        "",
        "yesterday",
        "2023-11-14",
        "2023-11-14T22:13:20",
        "2023-13-14T22:13:20Z",
        "2023-02-30T22:13:20Z",
        "2023-11-14T24:13:20Z",
        "2023-11-14T22:13:20.Z",
        "99999999999999999999",
    ] {
        let err = text.parse::<Timestamp>().unwrap_err();
        assert!(
            matches!(
                err,
                crate::Error::InvalidInput {
                    field: "timestamp",
                    ..
                }
            ),
            "{text}: {err}"
        );
    }
}

proptest! {
    #[test]
    fn every_instant_round_trips_through_text(us in any::<i64>()) {
        let t = Timestamp::from_micros(us);
        prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn calendar_instants_round_trip_through_text(
        us in -377_705_023_201_000_000i64..=253_402_207_200_000_000i64
    ) {
        let t = Timestamp::from_micros(us);
        let text = t.to_string();
        prop_assert!(text.ends_with('Z'), "{}", text);
        prop_assert_eq!(text.parse::<Timestamp>().unwrap(), t);
    }
}
