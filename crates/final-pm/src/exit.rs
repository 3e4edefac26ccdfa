//! Exit statuses, decided in one place.

/// How `final-pm` ends (decisions.md, "CLI behaviour").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Every requested action succeeded.
    Success,
    /// An action failed, a selector matched nothing it had to match, an upload
    /// was rejected, or the daemon could not be reached.
    Failure,
    /// The command line itself was wrong.
    Usage,
}

impl From<Exit> for u8 {
    fn from(exit: Exit) -> Self {
        match exit {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
        }
    }
}
