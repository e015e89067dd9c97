//! System metrics: samples keyed (name, time, id), so a name over a time
//! range is one range scan.

use tracing::instrument;

use crate::db::schema::METRICS;
use crate::db::{Db, codec};
use crate::error::{Error, StorageContext};
use crate::model::metric::MetricSample;
use crate::model::validate::{check_line, check_metric_name};
use crate::types::{MetricId, Timestamp};

/// Writes one sample (checked by the caller, or made by the store).
pub(crate) fn insert(txn: &redb::WriteTransaction, sample: &MetricSample) -> Result<(), Error> {
    let bytes = codec::encode(sample)?;
    txn.open_table(METRICS)
        .ctx("opening metrics")?
        .insert(
            (
                sample.name.as_str(),
                sample.at.as_micros(),
                sample.id.to_key(),
            ),
            bytes.as_slice(),
        )
        .ctx("writing metrics")?;
    Ok(())
}

/// System metric samples; from [`Store::metrics`](crate::Store::metrics).
///
/// ```
/// # use bharatvoice_store::*;
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = Store::open(Config::new(dir.path())).await?;
/// let t = Timestamp::from_micros(1_000);
/// store.metrics().record(MetricSample::new("asr.latency_ms", 42.0).at(t).label("lang", "hi-IN")).await?;
/// let got = store.metrics().query("asr.latency_ms", Timestamp::MIN, Timestamp::MAX).await?;
/// assert_eq!(got[0].value, 42.0);
/// # Ok(()) }
/// ```
pub struct Metrics<'a> {
    pub(crate) db: &'a Db,
}

impl Metrics<'_> {
    /// Records a sample durably. A label whose value is the id of a user
    /// needs that user's analytics consent (while `privacy.require_consent`
    /// is on): without it the sample is [`Error::ConsentRequired`] and
    /// nothing is recorded.
    #[instrument(skip_all, fields(name = %sample.name))]
    pub async fn record(&self, sample: MetricSample) -> Result<MetricId, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("metrics.record"),
            async {
                check_metric_name(&sample.name)?;
                if sample.labels.len() > 16
                    || sample
                        .labels
                        .iter()
                        .any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 256)
                {
                    return Err(Error::invalid(
                        "labels",
                        "at most 16 labels, keys 1-64 bytes, values up to 256 bytes",
                    ));
                }
                for (k, v) in &sample.labels {
                    check_line("labels", k)?;
                    check_line("labels", v)?;
                }
                if !sample.value.is_finite() {
                    return Err(Error::invalid("metric value", "must be a finite number"));
                }
                let gate = self.db.settings.require_consent;
                self.db
                    .write(move |txn| {
                        if gate {
                            require_analytics_of_labelled_users(txn, &sample)?;
                        }
                        insert(txn, &sample)?;
                        Ok(sample.id)
                    })
                    .await
            },
        )
        .await
    }

    /// Samples of `name` with `from <= at < to`, oldest first.
    #[instrument(skip(self))]
    pub async fn query(
        &self,
        name: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<MetricSample>, Error> {
        crate::telemetry::observe(
            &self.db.telemetry,
            crate::telemetry::op_key!("metrics.query"),
            async {
                check_metric_name(name)?;
                let name = name.to_string();
                self.db
                    .scan(move |txn| {
                        let t = txn.open_table(METRICS).ctx("opening metrics")?;
                        let mut out = Vec::new();
                        if from >= to {
                            return Ok(out);
                        }
                        let range = (name.as_str(), from.as_micros(), 0u128)
                            ..(name.as_str(), to.as_micros(), 0u128);
                        for row in t.range(range).ctx("scanning metrics")? {
                            let (k, v) = row.ctx("scanning metrics")?;
                            let id = MetricId::from_key(k.value().2);
                            out.push(codec::decode::<MetricSample>(v.value(), id)?);
                        }
                        Ok(out)
                    })
                    .await
            },
        )
        .await
    }
}

/// Refuses a sample labelled with the id of a user who has not given
/// analytics consent.
fn require_analytics_of_labelled_users(
    txn: &impl crate::db::txn::ReadTxn,
    sample: &MetricSample,
) -> Result<(), Error> {
    let users = txn.table(crate::db::schema::USERS)?;
    for v in sample.labels.values() {
        let Ok(user) = v.trim().parse::<crate::types::UserId>() else {
            continue;
        };
        let known = crate::db::users::load_live(&users, user).is_ok();
        if known && !crate::db::profiles::has_consent(txn, user, crate::ConsentKind::Analytics)? {
            return Err(Error::ConsentRequired {
                user,
                consent: crate::ConsentKind::Analytics,
            });
        }
    }
    Ok(())
}

/// Each distinct name that starts with `prefix`, with the time of its
/// newest sample: one lookup per name, not a walk over the history.
fn names_with_prefix(
    t: &redb::ReadOnlyTable<(&str, i64, u128), &[u8]>,
    prefix: &str,
) -> Result<Vec<(String, i64)>, Error> {
    use std::ops::Bound;
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let first = match &after {
            None => t.range((prefix, i64::MIN, 0u128)..),
            Some(n) => t.range::<(&str, i64, u128)>((
                Bound::Excluded((n.as_str(), i64::MAX, u128::MAX)),
                Bound::Unbounded,
            )),
        }
        .ctx("scanning metrics")?
        .next();
        let Some(row) = first else { break };
        let name = row.ctx("scanning metrics")?.0.value().0.to_owned();
        if !name.starts_with(prefix) {
            break;
        }
        let last = t
            .range((name.as_str(), i64::MIN, 0u128)..=(name.as_str(), i64::MAX, u128::MAX))
            .ctx("scanning metrics")?
            .next_back();
        if let Some(row) = last {
            names.push((name.clone(), row.ctx("scanning metrics")?.0.value().1));
        }
        after = Some(name);
    }
    Ok(names)
}

/// The newest snapshot of the samples whose names start with `prefix`:
/// its time and every sample taken exactly then.
pub(crate) fn latest_with_prefix(
    txn: &redb::ReadTransaction,
    prefix: &str,
) -> Result<Option<(Timestamp, Vec<MetricSample>)>, Error> {
    let t = txn.open_table(METRICS).ctx("opening metrics")?;
    let names = names_with_prefix(&t, prefix)?;
    let Some(us) = names.iter().map(|(_, at)| *at).max() else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (name, _) in names.iter().filter(|(_, at)| *at == us) {
        for row in t
            .range((name.as_str(), us, 0u128)..=(name.as_str(), us, u128::MAX))
            .ctx("scanning metrics")?
        {
            let (k, v) = row.ctx("scanning metrics")?;
            out.push(codec::decode::<MetricSample>(
                v.value(),
                MetricId::from_key(k.value().2),
            )?);
        }
    }
    Ok(Some((Timestamp::from_micros(us), out)))
}
