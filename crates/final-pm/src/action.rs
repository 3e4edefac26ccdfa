//! The positional words: an action and its selectors.

use std::fmt;

use crate::selector::Selector;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `start`, or its alias `restart`: new processes, then the old ones are
    /// stopped once the new ones are ready.
    Start,
    Stop,
    Kill,
    Scale,
    Show,
    Inspect,
    Add,
    Delete,
    Log,
}

/// The action words, as `Valid actions are: …` lists them.
pub(crate) const ACTION_WORDS: [&str; 10] = [
    "start", "restart", "stop", "scale", "kill", "show", "log", "add", "delete", "inspect",
];

impl Action {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "start" | "restart" => Self::Start,
            "stop" => Self::Stop,
            "kill" => Self::Kill,
            "scale" => Self::Scale,
            "show" => Self::Show,
            "inspect" => Self::Inspect,
            "add" => Self::Add,
            "delete" => Self::Delete,
            "log" => Self::Log,
            _ => return None,
        })
    }

    /// Whether the configuration of the selected apps is uploaded first.
    pub(crate) fn uploads(self) -> bool {
        matches!(self, Self::Start | Self::Add | Self::Scale)
    }

    /// Whether the action can create processes, so a daemon is launched for
    /// it when none runs. The others only look at or reduce what a running
    /// daemon has; without a daemon there is nothing for them to do.
    pub(crate) fn creates(self) -> bool {
        matches!(self, Self::Start | Self::Add | Self::Scale)
    }
}

/// The action with its selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    pub(crate) action: Action,
    /// The action word as typed (`restart` stays `restart` in messages).
    pub(crate) word: String,
    pub(crate) selectors: Vec<Selector>,
}

/// Words that do not form an action; each message line is printed with the
/// `[Arguments]` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the positional words; `None` when there are none.
pub(crate) fn parse(words: &[String]) -> Result<Option<Invocation>, UsageError> {
    let Some((first, rest)) = words.split_first() else {
        return Ok(None);
    };
    let Some(action) = Action::from_word(first) else {
        return Err(UsageError(format!(
            "Unknown action: {first}\nValid actions are: {}",
            ACTION_WORDS.join(", ")
        )));
    };
    let mut selectors = rest
        .iter()
        .map(|word| Selector::parse(word).map_err(|err| UsageError(err.0)))
        .collect::<Result<Vec<_>, _>>()?;
    if selectors.is_empty() {
        if matches!(action, Action::Show | Action::Log) {
            selectors.push(Selector::parse("all").map_err(|err| UsageError(err.0))?);
        } else {
            return Err(UsageError(format!(
                "Selector is missing: say what to {first}, e.g. \"final-pm {first} all\" \
                 or \"final-pm {first} web\""
            )));
        }
    }
    Ok(Some(Invocation {
        action,
        word: first.clone(),
        selectors,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn show_and_log_default_to_all() {
        for action in ["show", "log"] {
            let inv = parse(&words(action)).unwrap().unwrap();
            assert_eq!(inv.selectors.len(), 1);
            assert_eq!(inv.selectors[0].word, "all");
        }
    }

    #[test]
    fn restart_is_start() {
        let inv = parse(&words("restart web/0")).unwrap().unwrap();
        assert_eq!(inv.action, Action::Start);
        assert_eq!(inv.word, "restart");
    }

    #[test]
    fn errors_name_the_word() {
        let err = parse(&words("stop")).unwrap_err();
        assert!(err.0.starts_with("Selector is missing"), "{err}");
        let err = parse(&words("foo bar")).unwrap_err();
        assert!(
            err.0
                .starts_with("Unknown action: foo\nValid actions are: start, restart")
        );
        let err = parse(&words("foo")).unwrap_err();
        assert!(err.0.starts_with("Unknown action: foo"), "{err}");
        let err = parse(&words("stop a/b")).unwrap_err();
        assert!(err.0.starts_with("Unknown selector: a/b"), "{err}");
        assert_eq!(parse(&[]).unwrap(), None);
    }
}
