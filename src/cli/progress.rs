//! Progress bars on stderr, for the commands that take a while (backup,
//! restore, `verify --deep`, key rotation, export, large transfers): shown
//! only when stderr is a terminal and `--quiet` is not given, so scripts,
//! logs and pipes never see them.

use std::io::IsTerminal;

use bharatvoice_store::Progress;

use super::Out;

/// A bar, or nothing where none is shown; cleared when finished or
/// dropped (an error path leaves no half-drawn bar behind).
pub(crate) struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    /// A bar counting bytes (`total` 0: not known yet).
    pub(crate) fn bytes(out: &Out, verb: &'static str, total: u64) -> Bar {
        Bar::styled(
            out,
            total,
            verb,
            "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
    }

    /// A bar counting items, named in the template ("blobs").
    pub(crate) fn items(out: &Out, verb: &'static str, template: &'static str, total: u64) -> Bar {
        Bar::styled(out, total, verb, template)
    }

    /// No bar.
    pub(crate) fn hidden() -> Bar {
        Bar(None)
    }

    fn styled(out: &Out, total: u64, verb: &'static str, template: &str) -> Bar {
        if out.quiet() || !std::io::stderr().is_terminal() {
            return Bar::hidden();
        }
        let bar = indicatif::ProgressBar::new(total);
        let style = indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(verb);
        Bar(Some(bar))
    }

    /// Moves the bar to `done`.
    pub(crate) fn set(&self, done: u64) {
        if let Some(b) = &self.0 {
            b.set_position(done);
        }
    }

    /// The library's callback (done, total) that drives this bar; `None`
    /// where no bar is shown, so the work does not report for nothing.
    pub(crate) fn progress(&self) -> Option<Progress> {
        let bar = self.0.clone()?;
        Some(Progress::new(move |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        }))
    }

    /// Clears the bar (before the result prints).
    pub(crate) fn finish(self) {
        drop(self);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}
