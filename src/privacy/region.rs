//! The data region: where a deployment says its users' data must stay
//! (for example `IN`). It is recorded in the store when the store is
//! created (or first opened with a region), so that a copy of the data
//! directory carries it: a store recorded in one region opened by a
//! deployment configured for another is refused rather than silently
//! moved, and summaries name it (backups are to carry it in their
//! manifests).

use crate::db::{Db, get_meta, set_meta};
use crate::error::{Error, quote};

/// The `meta` key the region is recorded under.
const KEY: &str = "region";

/// Checks a region code: an ISO 3166-1 alpha-2 country code (`IN`),
/// optionally with an ISO 3166-2 subdivision (`IN-KA`), in capitals.
pub(crate) fn check(region: &str) -> Result<(), Error> {
    let (country, sub) = match region.split_once('-') {
        Some((c, s)) => (c, Some(s)),
        None => (region, None),
    };
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    let sub_ok = sub.is_none_or(|s| {
        (1..=3).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if country_ok && sub_ok {
        Ok(())
    } else {
        Err(Error::Config {
            reason: format!(
                "region {} is not an ISO 3166 code such as IN or IN-KA",
                quote(region)
            ),
        })
    }
}

/// What to do with the region at open.
pub(crate) struct Settled {
    /// The store's region from now on.
    pub(crate) region: Option<String>,
    /// Whether it still has to be recorded (a store created, or first
    /// opened, with a configured region).
    pub(crate) record: bool,
}

/// Compares the configured region with the one the store recorded: a
/// different one is [`Error::RegionMismatch`]; none recorded takes the
/// configured one.
pub(crate) fn settle(db: &Db, configured: Option<&str>) -> Result<Settled, Error> {
    let recorded: Option<String> = db.read(|txn| get_meta(txn, KEY, "the data region"))?;
    match (recorded, configured) {
        (Some(r), Some(c)) if r != c => Err(Error::RegionMismatch {
            what: "the store".into(),
            expected: c.to_string(),
            found: r,
        }),
        (Some(r), _) => Ok(Settled {
            region: Some(r),
            record: false,
        }),
        (None, c) => Ok(Settled {
            region: c.map(str::to_string),
            record: c.is_some() && !db.is_read_only(),
        }),
    }
}

/// Records `region` in the store.
pub(crate) async fn record(db: &Db, region: String) -> Result<(), Error> {
    db.write(move |txn| set_meta(txn, KEY, &region)).await?;
    tracing::info!("recorded the data region");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::Error;

    #[test]
    fn region_codes_are_iso_3166() {
        for ok in ["IN", "IN-KA", "IN-TN", "US", "GB-ENG", "FR-75"] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "in", "IND", "I", "IN-", "IN-karn", "IN KA", "../x", "IN-KA-1",
        ] {
            assert!(matches!(check(bad), Err(Error::Config { .. })), "{bad}");
        }
    }
}
