//! Printing results: a text rendering, or one JSON document with `--json`.
//! A closed stdout (`bvstore user list | head`) is not an error.

use std::io::Write;

use bharatvoice_store::Error;
use serde::Serialize;

pub(crate) struct Out {
    json: bool,
}

impl Out {
    pub(crate) fn new(json: bool) -> Self {
        Out { json }
    }

    /// Whether output is JSON.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints `value` as JSON in JSON mode; nothing otherwise.
    pub(crate) fn emit_json_only<T: Serialize>(&self, value: &T) -> Result<(), Error> {
        if self.json {
            self.emit(value, String::new)?;
        }
        Ok(())
    }

    /// Prints `value` as JSON, or the text `render` makes (nothing when it
    /// makes an empty string).
    pub(crate) fn emit<T: Serialize>(
        &self,
        value: &T,
        render: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        let text = if self.json {
            serde_json::to_string_pretty(value).map_err(|e| Error::io("writing JSON", e.into()))?
        } else {
            render()
        };
        if text.is_empty() {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}")
            .and_then(|_| stdout.flush())
            .map_err(|e| Error::io("writing to stdout", e))
    }
}

pub(crate) fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}
