//! The command line, as FinalPM has it: options and words in any order,
//! `final-pm [OPTIONS] [ACTION SELECTOR...]`.

use clap::Parser;

/// final-pm: a graceful process manager.
///
/// Every action is graceful: old processes are stopped only once their
/// replacements are ready.
#[derive(Debug, Parser)]
#[command(
    name = "final-pm",
    version,
    about,
    override_usage = "final-pm [OPTIONS] [ACTION SELECTOR...]",
    disable_help_flag = true
)]
pub(crate) struct Cli {
    /// Config file, or folder to search for process-config.js/.json (repeatable)
    #[arg(short = 'c', long = "config", value_name = "FILE|FOLDER")]
    pub(crate) config: Vec<String>,

    /// Override a configuration key: KEY=VALUE or APP:KEY=VALUE (repeatable)
    #[arg(long = "set", value_name = "[APP:]KEY=VALUE")]
    pub(crate) set: Vec<String>,

    /// log: how many past lines to print per application
    #[arg(
        short = 'n',
        long = "lines",
        value_name = "N",
        default_value_t = 10,
        allow_negative_numbers = true
    )]
    pub(crate) lines: i64,

    /// log: keep printing new lines until Ctrl-C
    #[arg(short = 'f', long = "follow")]
    pub(crate) follow: bool,

    /// Start the daemon if it is not running, and do nothing else
    #[arg(long)]
    pub(crate) launch: bool,

    /// After the other actions, stop every process and the daemon
    #[arg(long)]
    pub(crate) kill: bool,

    /// After the action, wait until every process has started or stopped
    #[arg(long)]
    pub(crate) wait: bool,

    /// Replace apps uploaded from another config file, or builtin apps
    #[arg(long)]
    pub(crate) force: bool,

    /// Do not upload the configuration; act on the daemon's stored apps
    #[arg(long = "no-upload")]
    pub(crate) no_upload: bool,

    /// Print what would be done, and do nothing
    #[arg(long)]
    pub(crate) dry: bool,

    /// Print debug lines; show and inspect also list loggers
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,

    /// Print results as JSON (the protocol's own types)
    #[arg(long)]
    pub(crate) json: bool,

    /// Print the short help (options)
    #[arg(long)]
    pub(crate) help: bool,

    /// Print the full usage: actions, selectors, examples
    #[arg(long = "help-usage")]
    pub(crate) help_usage: bool,

    /// Print how processes move through the generations
    #[arg(long = "help-generations")]
    pub(crate) help_generations: bool,

    /// Print an example configuration and app
    #[arg(long = "help-example")]
    pub(crate) help_example: bool,

    /// Print every configuration key with its default
    #[arg(long = "help-configuration")]
    pub(crate) help_configuration: bool,

    /// Print all help pages
    #[arg(long = "help-all")]
    pub(crate) help_all: bool,

    /// The action and its selectors: start, restart, stop, scale, kill, show,
    /// log, add, delete, inspect
    #[arg(value_name = "ACTION SELECTOR")]
    pub(crate) words: Vec<String>,
}

impl Cli {
    /// The help page asked for, if any. When several are given, the first of
    /// usage, generations, example, configuration, all, help wins.
    pub(crate) fn help_page(&self) -> Option<fn() -> String> {
        use crate::help;
        [
            (self.help_usage, help::usage as fn() -> String),
            (self.help_generations, help::generations),
            (self.help_example, help::example),
            (self.help_configuration, help::configuration),
            (self.help_all, help::all),
            (self.help, help::short),
        ]
        .into_iter()
        .find_map(|(asked, page)| asked.then_some(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_and_words_interleave() {
        let cli = Cli::try_parse_from([
            "final-pm",
            "start",
            "-v",
            "web",
            "--set",
            "web:instances=2",
            "--wait",
        ])
        .unwrap();
        assert_eq!(cli.words, ["start", "web"]);
        assert!(cli.verbose && cli.wait);
        assert_eq!(cli.set, ["web:instances=2"]);
    }

    #[test]
    fn short_flags_combine_and_lines_take_values() {
        let cli = Cli::try_parse_from(["final-pm", "log", "-vf", "-n", "5", "web"]).unwrap();
        assert!(cli.verbose && cli.follow);
        assert_eq!(cli.lines, 5);
        let cli = Cli::try_parse_from(["final-pm", "--lines=7", "log"]).unwrap();
        assert_eq!(cli.lines, 7);
    }

    #[test]
    fn unknown_options_are_refused() {
        assert!(Cli::try_parse_from(["final-pm", "--foo"]).is_err());
        assert!(Cli::try_parse_from(["final-pm", "--verbose=true"]).is_err());
    }
}
