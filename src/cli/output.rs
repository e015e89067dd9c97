//! Printing results: a text rendering, or one JSON document with `--json`.
//! A closed stdout (`bvstore user list | head`) is not an error. Text output
//! passes every string a user supplied through [`clean`]; JSON is escaped
//! by serde_json.

use std::borrow::Cow;
use std::io::Write;

use bharatvoice_store::{Error, Page, is_control_or_bidi};
use serde::Serialize;

use super::table::{Align, Table};

pub(crate) struct Out {
    json: bool,
    quiet: bool,
}

impl Out {
    /// `quiet` (`--quiet`) drops what is not the result: progress bars,
    /// hints and notes. Results and errors still print.
    pub(crate) fn new(json: bool, quiet: bool) -> Self {
        Out { json, quiet }
    }

    /// Whether output is JSON.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Whether `--quiet` was given.
    pub(crate) fn quiet(&self) -> bool {
        self.quiet
    }

    /// Prints a note for a person on stderr (why a key is missing, that
    /// nothing matched), unless `--quiet`. Text must already be [`clean`]ed.
    pub(crate) fn note(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// `text`, followed by `hint` on its own line unless `--quiet` (what
    /// to run next: not part of the result).
    pub(crate) fn with_hint(&self, text: String, hint: impl std::fmt::Display) -> String {
        match self.quiet {
            true => text,
            false => format!("{text}\n{hint}"),
        }
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
    /// Text must already be [`clean`]ed.
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

/// `text` with every control or bidi character escaped as Rust writes it
/// (`\u{1b}`, `\r`, `\n`, `\u{202e}`), so that a stored name cannot clear
/// the terminal, forge an output line or reorder what follows it.
pub(crate) fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control_or_bidi) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control_or_bidi(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`clean`] of a path, for text output.
pub(crate) fn clean_path(path: &std::path::Path) -> String {
    clean(&path.display().to_string()).into_owned()
}

/// A page of a listing as a table (a header, a row an item), then how to
/// ask for the next page; `empty` where there is neither.
pub(crate) fn page_table<T>(
    page: &Page<T>,
    columns: &[(&'static str, Align)],
    cells: impl Fn(&T) -> Vec<String>,
    empty: &str,
) -> String {
    if page.items.is_empty() && page.next.is_none() {
        return empty.into();
    }
    let mut table = Table::new(columns);
    for item in &page.items {
        table.row(cells(item));
    }
    let mut text = table.render();
    if let Some(next) = &page.next {
        text.push_str(&format!("\nmore: --after {next}"));
    }
    text
}

pub(crate) fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_escapes_control_and_bidi_characters_only() {
        assert_eq!(clean("नमस्ते Ravi"), "नमस्ते Ravi");
        assert_eq!(clean("a\x1b[2Jb\r\nc"), "a\\u{1b}[2Jb\\r\\nc");
        assert_eq!(clean("x\u{202e}y\u{2066}z"), "x\\u{202e}y\\u{2066}z");
        assert_eq!(clean("tab\there\0"), "tab\\there\\0");
    }
}
