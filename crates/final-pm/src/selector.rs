//! Selectors: which applications and processes an action applies to.
//!
//! ```text
//! selector := [GENERATION ":"] target
//! target   := "all" | NAME | NAME "/" NUMBER | "id=" NUMBER | "pid=" NUMBER
//! ```
//!
//! Unlike FinalPM, a misspelt generation (`runing:web`) is a usage error
//! rather than a selector that silently matches nothing.

use std::fmt;

use final_pm_protocol::{AppInfo, AppType, Generation, ProcessInfo};

/// What a selector points at, before the generation filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every application that is not a logger (loggers too with `-v` where
    /// the action says so).
    All,
    /// An application, optionally one process number of it.
    App { name: String, number: Option<u32> },
    /// One process by the daemon's id.
    Id(u64),
    /// One process by its OS pid.
    Pid(u32),
}

/// One parsed selector word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    pub(crate) generation: Option<Generation>,
    pub(crate) target: Target,
    /// The word as the user wrote it, for messages.
    pub(crate) word: String,
}

/// A selector word that does not parse; the message says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelectorError(pub(crate) String);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How process-specific parts of a selector are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A selector without number, id or pid matches every process of its app
    /// (stop, kill, scale, show, log).
    Loose,
    /// Only selectors with a number, id or pid match processes; the others
    /// select the application alone (inspect).
    Exact,
}

impl Selector {
    pub(crate) fn parse(word: &str) -> Result<Self, SelectorError> {
        let (generation, target) = match word.split_once(':') {
            Some((generation, target)) => (Some(parse_generation(word, generation)?), target),
            None => (None, word),
        };
        let target = parse_target(word, target)?;
        Ok(Self {
            generation,
            target,
            word: word.to_owned(),
        })
    }

    /// The application this selector names (`all` included), if any.
    pub(crate) fn app_part(&self) -> Option<&str> {
        match &self.target {
            Target::All => Some("all"),
            Target::App { name, .. } => Some(name),
            Target::Id(_) | Target::Pid(_) => None,
        }
    }

    /// Whether the selector names an application as a whole (no number, id
    /// or pid): such selectors select apps.
    pub(crate) fn selects_apps(&self) -> bool {
        matches!(self.target, Target::All | Target::App { number: None, .. })
    }

    /// Whether `app` is selected (as an application).
    pub(crate) fn matches_app(&self, app: &AppInfo, with_loggers: bool) -> bool {
        match &self.target {
            Target::All => with_loggers || app.config.app_type != AppType::Logger,
            Target::App { name, number: None } => *name == app.config.name,
            _ => false,
        }
    }

    /// Whether `process` is selected. `app_type` is the type of the
    /// process's application (loggers are left out of `all` unless
    /// `with_loggers`).
    pub(crate) fn matches_process(
        &self,
        process: &ProcessInfo,
        app_type: AppType,
        mode: Mode,
        with_loggers: bool,
    ) -> bool {
        if self.generation.is_some_and(|g| g != process.generation) {
            return false;
        }
        match &self.target {
            Target::All => mode == Mode::Loose && (with_loggers || app_type != AppType::Logger),
            Target::App { name, number } => {
                *name == process.app_name
                    && match number {
                        Some(n) => *n == process.number,
                        None => mode == Mode::Loose,
                    }
            }
            Target::Id(id) => *id == process.id.0,
            Target::Pid(pid) => Some(*pid) == process.pid,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.word)
    }
}

fn parse_generation(word: &str, name: &str) -> Result<Generation, SelectorError> {
    Generation::parse(name).ok_or_else(|| {
        SelectorError(format!(
            "Unknown generation \"{name}\" in selector {word}; \
             expected queue, new, running, old or marked"
        ))
    })
}

fn parse_target(word: &str, target: &str) -> Result<Target, SelectorError> {
    let bad = |why: &str| SelectorError(format!("Unknown selector: {word} ({why})"));
    if let Some(id) = target.strip_prefix("id=") {
        return parse_number(id)
            .map(Target::Id)
            .ok_or_else(|| bad("id= takes a process id, e.g. id=4"));
    }
    if let Some(pid) = target.strip_prefix("pid=") {
        return parse_number(pid)
            .and_then(|pid| u32::try_from(pid).ok())
            .map(Target::Pid)
            .ok_or_else(|| bad("pid= takes an OS process id, e.g. pid=4242"));
    }
    let (name, number) = match target.split_once('/') {
        Some((name, number)) => {
            let number = parse_number(number)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad("the part after / must be a process number, e.g. web/0"))?;
            (name, Some(number))
        }
        None => (target, None),
    };
    if name.is_empty()
        || name.starts_with('-')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad(
            "application names consist of letters, digits, '_' and '-'",
        ));
    }
    if name == "all" {
        if number.is_some() {
            return Err(bad("all takes no process number"));
        }
        return Ok(Target::All);
    }
    Ok(Target::App {
        name: name.to_owned(),
        number,
    })
}

fn parse_number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(word: &str) -> Target {
        Selector::parse(word).unwrap().target
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(target("all"), Target::All);
        assert_eq!(
            target("web"),
            Target::App {
                name: "web".into(),
                number: None
            }
        );
        assert_eq!(
            target("my_app-2/13"),
            Target::App {
                name: "my_app-2".into(),
                number: Some(13)
            }
        );
        assert_eq!(target("id=7"), Target::Id(7));
        assert_eq!(target("pid=4242"), Target::Pid(4242));
        let s = Selector::parse("running:web/0").unwrap();
        assert_eq!(s.generation, Some(Generation::Running));
        for generation in ["queue", "new", "running", "old", "marked"] {
            assert!(Selector::parse(&format!("{generation}:all")).is_ok());
        }
    }

    #[test]
    fn malformed_words_are_refused_with_a_reason() {
        for word in [
            "a/b", "web/", "/0", "id=", "id=x", "pid=-1", "all/0", "", "we.b", "-web", "web/-1",
        ] {
            let err = Selector::parse(word).unwrap_err();
            assert!(err.0.contains(word), "{word}: {err}");
        }
        let err = Selector::parse("runing:web").unwrap_err();
        assert!(err.0.contains("Unknown generation \"runing\""), "{err}");
    }
}
