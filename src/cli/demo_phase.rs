//! A phase of `bvstore demo`: the bar it shows on stderr while it runs
//! and the row it leaves in the summary table. Kept apart from the phases
//! so that every one of them is timed, counted and drawn the same way.

use std::time::Instant;

use serde::Serialize;

use super::Out;
use super::progress::Bar;

/// One row of the summary table (and of `phases` in the JSON).
#[derive(Debug, Serialize)]
pub(crate) struct PhaseRow {
    /// The phase, as the table names it (`users & profiles`).
    pub(crate) name: &'static str,
    /// What the throughput counts, in `unit`s.
    pub(crate) count: u64,
    /// What `count` counts: `users`, `writes`, `bytes` ...
    pub(crate) unit: &'static str,
    /// What was done, for a person (`3,000 sessions / 18,000 turns`).
    pub(crate) detail: String,
    /// Wall time of the phase.
    pub(crate) seconds: f64,
    /// `count` per second of `seconds` (bytes per second for `bytes`).
    pub(crate) per_second: f64,
}

/// The phases run so far, and where their bars go.
pub(crate) struct Phases<'a> {
    out: &'a Out,
    rows: Vec<PhaseRow>,
}

impl<'a> Phases<'a> {
    pub(crate) fn new(out: &'a Out) -> Phases<'a> {
        Phases {
            out,
            rows: Vec::new(),
        }
    }

    /// Starts the next phase: see [`Phase::start`].
    pub(crate) fn start(&self, name: &'static str, template: &'static str, total: usize) -> Phase {
        Phase::start(self.out, name, template, total)
    }

    /// Ends `phase` (see [`Phase::end`]) and keeps its row.
    pub(crate) fn end(
        &mut self,
        phase: Phase,
        count: u64,
        unit: &'static str,
        detail: String,
    ) -> &PhaseRow {
        self.rows.push(phase.end(count, unit, detail));
        &self.rows[self.rows.len() - 1]
    }

    /// The rows, in the order the phases ran.
    pub(crate) fn into_rows(self) -> Vec<PhaseRow> {
        self.rows
    }
}

/// A phase being run: its start and its bar.
pub(crate) struct Phase {
    name: &'static str,
    started: Instant,
    bar: Bar,
}

impl Phase {
    /// Starts a phase whose bar counts what `template` names
    /// (`{pos}/{len} users`), `total` known up front (0: not yet, or
    /// sized by a library callback).
    pub(crate) fn start(
        out: &Out,
        name: &'static str,
        template: &'static str,
        total: usize,
    ) -> Phase {
        let bar = match out.json() {
            // One JSON document is the whole output: no bars beside it.
            true => Bar::hidden(),
            false => Bar::items(out, name, template, total as u64),
        };
        Phase {
            name,
            started: Instant::now(),
            bar,
        }
    }

    /// The phase's bar, for the work to move.
    pub(crate) fn bar(&self) -> &Bar {
        &self.bar
    }

    /// Clears the bar and makes the phase's row: `count` `unit`s done, as
    /// `detail` says.
    pub(crate) fn end(self, count: u64, unit: &'static str, detail: String) -> PhaseRow {
        let seconds = self.started.elapsed().as_secs_f64();
        self.bar.finish();
        PhaseRow {
            name: self.name,
            count,
            unit,
            detail,
            seconds,
            per_second: count as f64 / seconds.max(1e-9),
        }
    }
}

/// The bar templates, one per kind of thing a phase counts.
pub(crate) mod templates {
    pub(crate) const USERS: &str = "{msg:17} {bar:40} {pos}/{len} users {elapsed}";
    pub(crate) const CLIPS: &str = "{msg:17} {bar:40} {pos}/{len} clips {elapsed}";
    pub(crate) const FILES: &str = "{msg:17} {bar:40} {pos}/{len} files {elapsed}";
    pub(crate) const LOOKUPS: &str = "{msg:17} {bar:40} {pos}/{len} lookups {elapsed}";
    pub(crate) const STEPS: &str = "{msg:17} {bar:40} {pos}/{len} steps {elapsed}";
    pub(crate) const BLOBS: &str = "{msg:17} {bar:40} {pos}/{len} blobs {elapsed}";
    pub(crate) const BYTES: &str =
        "{msg:17} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {elapsed}";
}
