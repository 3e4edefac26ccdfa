//! Human output: `[LEVEL] [Tag] text` lines, as FinalPM prints them.
//!
//! Results and progress go to stdout, warnings and errors to stderr. Colour is
//! used only when the stream is a terminal and `NO_COLOR` is unset. Text from
//! outside (app output, daemon messages) is printed verbatim except that
//! control characters are neutralised on a terminal, so an app cannot drive
//! the user's terminal.

use std::io::{IsTerminal, Write};

/// Severity of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO ",
            Self::Warn => "WARN ",
            Self::Error => "ERROR",
        }
    }
    fn colour(self) -> &'static str {
        match self {
            Self::Debug => "\x1b[1;90m",
            Self::Info => "\x1b[1;37m",
            Self::Warn => "\x1b[1;33m",
            Self::Error => "\x1b[1;31m",
        }
    }
    fn to_stderr(self) -> bool {
        matches!(self, Self::Warn | Self::Error)
    }
}

/// The output sink with its settings.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    verbose: bool,
    /// stdout carries JSON only: progress lines go to stderr.
    json: bool,
    colour_out: bool,
    colour_err: bool,
}

impl Output {
    pub(crate) fn new(verbose: bool, json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            verbose,
            json,
            colour_out: !no_color && std::io::stdout().is_terminal(),
            colour_err: !no_color && std::io::stderr().is_terminal(),
        }
    }

    /// Prints one message, with the full prefix on every line of it.
    pub(crate) fn line(&self, level: Level, tags: &[&str], text: &str) {
        if level == Level::Debug && !self.verbose {
            return;
        }
        let to_stderr = level.to_stderr() || self.json;
        let colour = if to_stderr {
            self.colour_err
        } else {
            self.colour_out
        };
        let mut prefix = String::new();
        if colour {
            prefix.push_str(level.colour());
        }
        prefix.push('[');
        prefix.push_str(level.label());
        prefix.push(']');
        if colour {
            prefix.push_str("\x1b[0m");
        }
        for tag in tags {
            prefix.push_str(" [");
            prefix.push_str(tag);
            prefix.push(']');
        }
        let mut buffer = String::new();
        for line in text.split('\n') {
            buffer.push_str(&prefix);
            buffer.push(' ');
            if colour {
                buffer.extend(line.chars().map(|c| {
                    if c.is_control() && c != '\t' {
                        '\u{fffd}'
                    } else {
                        c
                    }
                }));
            } else {
                buffer.push_str(line);
            }
            buffer.push('\n');
        }
        // A closed pipe (`final-pm show | head`) is not an error worth a panic.
        let _ = if to_stderr {
            std::io::stderr().lock().write_all(buffer.as_bytes())
        } else {
            std::io::stdout().lock().write_all(buffer.as_bytes())
        };
    }

    /// Whether results on stdout may be coloured.
    pub(crate) fn colour(&self) -> bool {
        self.colour_out
    }

    /// A result (a table, a log line, JSON): printed as it is, on stdout.
    pub(crate) fn result(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = stdout.write_all(b"\n");
        }
    }

    pub(crate) fn info(&self, tags: &[&str], text: &str) {
        self.line(Level::Info, tags, text);
    }
    pub(crate) fn debug(&self, tags: &[&str], text: &str) {
        self.line(Level::Debug, tags, text);
    }
    pub(crate) fn error(&self, tags: &[&str], text: &str) {
        self.line(Level::Error, tags, text);
    }
    pub(crate) fn warn(&self, tags: &[&str], text: &str) {
        self.line(Level::Warn, tags, text);
    }
}
