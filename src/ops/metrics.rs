//! `Store::metrics_report`: the registry's operation figures with the
//! parts' counters and gauges read now (cache, database, disk, jobs), also
//! handed to the `metrics` facade as gauges so an application's recorder
//! sees them.

use crate::error::Error;
use crate::store::Store;
use crate::telemetry::{MetricValue, MetricsReport, OperationStats};

impl Store {
    /// Every public operation's calls, errors by kind and latency
    /// quantiles since the store opened, with the cache's, the database's,
    /// the disk's and the jobs' figures now. [`MetricsReport::prometheus`]
    /// formats it for a scraper.
    ///
    /// ```
    /// # use bharatvoice_store::*;
    /// # #[tokio::main] async fn main() -> Result<(), Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(Config::new(dir.path())).await?;
    /// let _ = store.cache().get_bytes("nothing-here").await?;
    /// let report = store.metrics_report().await?;
    /// assert_eq!(report.value("bv_cache_lookups_total", &[]), Some(1.0));
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip_all)]
    pub async fn metrics_report(&self) -> Result<MetricsReport, Error> {
        crate::telemetry::observe(
            &self.db().telemetry,
            crate::telemetry::op_key!("store.metrics_report"),
            self.metrics_report_now(),
        )
        .await
    }

    async fn metrics_report_now(&self) -> Result<MetricsReport, Error> {
        let telemetry = &self.db().telemetry;
        let operations = telemetry.counts().iter().map(OperationStats::of).collect();
        let mut values = cache_values(&self.cache().stats());
        let writes = self.write_stats();
        values.push(MetricValue::counter(
            "bv_db_write_requests_total",
            "Write requests the group-commit writer answered.",
            writes.requests,
        ));
        values.push(MetricValue::counter(
            "bv_db_commits_total",
            "Transactions the group-commit writer committed.",
            writes.commits,
        ));
        let config = self.config().clone();
        let floor = config.quota.min_free_bytes;
        let files = tokio::task::spawn_blocking(move || {
            let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
            let disk = crate::quota::disk_space(&config.data_dir, floor);
            (size(config.db_path()), size(config.cache_path()), disk)
        })
        .await
        .map_err(|e| Error::join("reading file sizes", e))?;
        values.push(
            MetricValue::gauge(
                "bv_file_bytes",
                "Size of the store's files.",
                files.0 as f64,
            )
            .label("file", "store.redb"),
        );
        values.push(
            MetricValue::gauge(
                "bv_file_bytes",
                "Size of the store's files.",
                files.1 as f64,
            )
            .label("file", "cache.redb"),
        );
        if let Ok(Some(disk)) = files.2 {
            telemetry.anomalies.note_space(disk.available);
            values.push(MetricValue::gauge(
                "bv_disk_available_bytes",
                "Bytes available to the store on the disk holding its data directory.",
                disk.available as f64,
            ));
            values.push(MetricValue::gauge(
                "bv_disk_total_bytes",
                "Size of the disk holding the data directory.",
                disk.total as f64,
            ));
        }
        for job in self.jobs().list() {
            values.push(
                MetricValue::counter(
                    "bv_job_runs_total",
                    "Passes of each background job.",
                    job.runs,
                )
                .label("job", job.name),
            );
            values.push(
                MetricValue::counter(
                    "bv_job_failures_total",
                    "Failed passes of each background job.",
                    job.failures,
                )
                .label("job", job.name),
            );
        }
        for v in &values {
            let labels: Vec<metrics::Label> = v
                .labels
                .iter()
                .map(|(k, l)| metrics::Label::new(k.clone(), l.clone()))
                .collect();
            metrics::gauge!(v.name.clone(), labels).set(v.value);
        }
        Ok(MetricsReport {
            taken_at: self.config().clock.now(),
            uptime_secs: telemetry.opened.elapsed().as_secs_f64(),
            operations,
            values,
        })
    }
}

fn cache_values(c: &crate::CacheStats) -> Vec<MetricValue> {
    let mut v = vec![
        MetricValue::counter(
            "bv_cache_lookups_total",
            "Cache lookups (each key of a get_many counts).",
            c.lookups,
        ),
        MetricValue::gauge(
            "bv_cache_hit_ratio",
            "Cache hits over lookups since the store opened.",
            c.hit_ratio,
        ),
    ];
    let tiers = [
        ("memory", c.tier1.hits, c.tier1.entries, c.tier1.bytes),
        ("disk", c.tier2.hits, c.tier2.entries, c.tier2.bytes),
    ];
    for (tier, hits, entries, bytes) in tiers {
        v.push(
            MetricValue::counter(
                "bv_cache_hits_total",
                "Cache hits by the tier that answered.",
                hits,
            )
            .label("tier", tier),
        );
        v.push(
            MetricValue::gauge(
                "bv_cache_entries",
                "Entries each cache tier holds.",
                entries as f64,
            )
            .label("tier", tier),
        );
        v.push(
            MetricValue::gauge(
                "bv_cache_bytes",
                "Bytes each cache tier holds.",
                bytes as f64,
            )
            .label("tier", tier),
        );
    }
    v.push(MetricValue::gauge(
        "bv_cache_disk_tier_degraded",
        "1 while the disk tier (cache.redb) cannot be written, else 0.",
        f64::from(u8::from(c.tier2.state == crate::Tier2State::Degraded)),
    ));
    v
}

impl Store {
    /// The newest snapshot the `metrics-snapshot` job wrote into the
    /// metrics table: its time and samples (`bv.op.calls`, `bv.op.p99_us`,
    /// ... per operation over the interval before it, and the parts'
    /// values), or `None` before the first.
    pub async fn last_metrics_snapshot(
        &self,
    ) -> Result<Option<(crate::Timestamp, Vec<crate::MetricSample>)>, Error> {
        self.db().scan(crate::telemetry::snapshot::latest).await
    }
}
