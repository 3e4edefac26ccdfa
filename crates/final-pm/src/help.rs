//! The help pages: `--help`, `--help-usage`, `--help-generations`,
//! `--help-example`, `--help-configuration` and `--help-all`.
//!
//! Every page is plain text (no ANSI codes, so it reads the same in a pipe,
//! a pager or a terminal) and no line is wider than [`WIDTH`] columns. Prose
//! is word-wrapped here, so the texts below are written as paragraphs;
//! examples and code are printed verbatim.
//!
//! The configuration page lists the keys by walking [`TopKey::ALL`] and
//! [`AppKey::ALL`] through exhaustive `match`es: a key added to the loader
//! does not compile until it is documented here, and the documented
//! defaults are checked against the loader's in the tests.

use final_pm_daemon::paths::{DEFAULT_DAEMON_LOG, DEFAULT_SOCKET};

use crate::config::{AppKey, DEFAULT_IGNORE_ENV, TopKey};

/// The widest line any page contains, in columns.
pub(crate) const WIDTH: usize = 80;

/// The synopsis, as every page shows it.
const SYNOPSIS: &str = "final-pm [OPTIONS] [ACTION SELECTOR...]";

/// Column where option descriptions start.
const OPTION_COLUMN: usize = 28;

/// The options: how they are written, and what they do.
const OPTIONS: [(&str, &str); 21] = [
    (
        "-c, --config FILE|FOLDER",
        "Config file, or folder to search (repeatable)",
    ),
    (
        "--set [APP:]KEY=VALUE",
        "Override a configuration key (repeatable)",
    ),
    ("-n, --lines N", "log: print the last N lines (default 10)"),
    ("-f, --follow", "log: keep printing new lines until Ctrl-C"),
    ("--launch", "Start the daemon if it is not running"),
    ("--kill", "Last of all, kill every process and the daemon"),
    ("--wait", "Return only once nothing is starting or stopping"),
    (
        "--force",
        "Replace or delete builtins, replace apps uploaded from other files",
    ),
    (
        "--no-upload",
        "Act on the daemon's apps; do not upload the config",
    ),
    (
        "--dry",
        "Print what would be done; launch and change nothing",
    ),
    (
        "-v, --verbose",
        "Debug output; show and inspect include loggers",
    ),
    ("--json", "Print results as JSON"),
    ("--help", "Print this help"),
    (
        "--help-usage",
        "Explain actions, selectors and exit statuses",
    ),
    (
        "--help-generations",
        "Explain the five generations of processes",
    ),
    (
        "--help-configuration",
        "Explain configuration files and every key",
    ),
    ("--help-example", "Print an example configuration and app"),
    (
        "--help-all",
        "Print usage, generations, configuration, example",
    ),
    ("-V, --version", "Print the version"),
    (
        "ACTION",
        "start, restart, stop, kill, scale, show, inspect, add, delete, log",
    ),
    ("SELECTOR", "all, NAME, NAME/N, id=N, pid=N, GEN:SELECTOR"),
];

/// `--help`: the synopsis and one line (or a few) per option.
pub(crate) fn short() -> String {
    let mut page = Page::default();
    page.line("final-pm: a process manager that replaces processes gracefully.");
    page.blank();
    page.line(&format!("Usage: {SYNOPSIS}"));
    page.heading("Options:");
    page.items(OPTION_COLUMN, &OPTIONS);
    page.para(
        "final-pm --help-usage explains actions and selectors; \
         final-pm --help-all prints every help page.",
    );
    page.finish()
}

/// `--help-usage`: what final-pm does, examples, options, selectors,
/// actions and exit statuses.
pub(crate) fn usage() -> String {
    let mut page = Page::default();
    page.title("final-pm");
    page.para("A process manager that replaces processes gracefully.");
    page.para(
        "Every action is graceful. Starting an application that already runs \
         starts the new processes first, waits until they are ready, and only \
         then stops the processes they replace, so the application keeps \
         serving throughout. A process is never asked to stop before it has \
         become ready, and it gets time to finish its work before it is \
         forced to exit.",
    );
    page.heading("Usage:");
    page.verbatim(&format!("  {SYNOPSIS}"));
    page.para(
        "Options and words may come in any order. The first word is the \
         action, every further word a selector.",
    );
    page.heading("Examples:");
    page.entries(&[
        (
            "final-pm start all",
            "Upload every application of the configuration, then start every \
             application the daemon has. Processes already running are \
             replaced once their successors are ready.",
        ),
        (
            "final-pm --set worker:instances=4 start worker",
            "Start four processes of worker, whatever the configuration file \
             says.",
        ),
        (
            "final-pm stop pid=43342 pid=3452",
            "Stop the two processes with these operating-system process ids.",
        ),
        ("final-pm stop worker", "Stop every process of worker."),
        (
            "final-pm stop running:worker/0 running:worker/1",
            "Stop instances 0 and 1 of worker, but only those that are \
             already running; their replacements still starting are kept.",
        ),
    ]);
    page.heading("Options:");
    page.items(OPTION_COLUMN, &OPTIONS);
    page.heading("Selectors:");
    page.para(
        "A selector names applications and processes. An action takes one or \
         more; a process or application is affected if any of them matches.",
    );
    page.items(
        16,
        &[
            (
                "NAME",
                "The application NAME and every one of its processes.",
            ),
            (
                "all",
                "Every application and its processes, except loggers (which \
                 only count when named, or for show and inspect with -v).",
            ),
            (
                "NAME/N",
                "The process of NAME with instance number N (counted from 0).",
            ),
            (
                "id=N",
                "The process with final-pm's process id N, as show prints it.",
            ),
            ("pid=N", "The process with operating-system process id N."),
            (
                "GEN:SELECTOR",
                "Only processes of SELECTOR that are in generation GEN: \
                 queue:, new:, running:, old: or marked: (for example \
                 running:web or old:all). Any other prefix is a usage error. \
                 See final-pm --help-generations.",
            ),
        ],
    );
    page.para(
        "show and log without a selector mean all. Actions that upload \
         (start, restart, scale, add) upload the configuration of the \
         applications their selectors name first.",
    );
    page.heading("Actions:");
    page.entries(&[
        (
            "start SELECTOR..., restart SELECTOR...",
            "Upload the named applications, then start as many new processes \
             of each as its instances key says (NAME/N starts instance N \
             only). Once a new process is ready it replaces the running one \
             of the same number, or the oldest one. restart is the same \
             action under another name.",
        ),
        (
            "stop SELECTOR...",
            "Stop the selected processes gracefully. A running process is \
             sent its stop-signal, and its kill-signal if it is still there \
             after stop-timeout. A process that is still starting is stopped \
             once it is ready; a queued one is dropped at once. Processes \
             that are stopped are not restarted.",
        ),
        (
            "kill SELECTOR...",
            "Send the selected processes their kill-signal now, without \
             waiting. If a process survives it, killing it again sends \
             SIGKILL.",
        ),
        (
            "scale SELECTOR...",
            "Upload the named applications, then bring each to exactly its \
             instances: missing instance numbers are started, processes with \
             numbers beyond it are stopped. Combine with --set \
             NAME:instances=N.",
        ),
        (
            "show [SELECTOR...]",
            "Print the applications and their processes, grouped by \
             generation, with ids, operating-system pids, uptimes and \
             crash counts.",
        ),
        (
            "inspect SELECTOR...",
            "Print everything about the selected applications (NAME, all: \
             their full configuration) or processes (NAME/N, id=N, pid=N).",
        ),
        (
            "add SELECTOR...",
            "Upload the named applications without starting anything. A \
             changed application replaces the daemon's copy; its processes \
             keep their old configuration until they are started again.",
        ),
        (
            "delete SELECTOR...",
            "Remove the selected applications from the daemon. Their \
             processes keep running until they are stopped. A builtin \
             application (such as file-logger) is only deleted with --force.",
        ),
        (
            "log [SELECTOR...]",
            "Print the last lines the selected applications or processes \
             wrote (-n, default 10), from all of them merged in time order, \
             then with -f keep printing new ones until Ctrl-C. Every \
             selector form works here.",
        ),
    ]);
    page.heading("Exit status:");
    page.items(
        6,
        &[
            (
                "0",
                "Everything requested succeeded (and after printing help).",
            ),
            (
                "1",
                "Something failed: the configuration, an upload, an action, \
                 a selector that matched no application (start nosuch), or \
                 reaching the daemon.",
            ),
            (
                "2",
                "Usage error: an unknown option, action, selector or \
                 generation, or a missing selector.",
            ),
        ],
    );
    page.finish()
}

/// `--help-generations`: the five generations and what happens in each.
pub(crate) fn generations() -> String {
    let mut page = Page::default();
    page.title("Generations");
    page.para(
        "Each process final-pm manages is in exactly one of five \
         generations, and its generation decides what happens to it next. \
         show groups processes by generation, and a selector can pick one, \
         as in running:web or old:all.",
    );
    page.entry(
        "queue",
        "Waiting for room. An application's max-instances limits how many of \
         its processes may be in new, running, old and marked together; a \
         process started beyond that waits here. The oldest waiting process \
         starts as soon as there is room: when a process of the application \
         exits, or when the application is uploaded again with a higher \
         limit, or deleted. Stopping a queued process removes it at once.",
    );
    page.entry(
        "new",
        "Started, not ready yet. The process moves on to running as soon as \
         it is ready (see ready-on). If it exits here it counts as a crash \
         and, with restart-new-crashing, is started again after \
         restart-crashing-delay. With a start-timeout, a process that takes \
         longer is killed, which is also a crash. Stopping a new process \
         moves it to marked.",
    );
    page.entry(
        "running",
        "Ready and serving. Whenever a process arrives here, final-pm keeps \
         the newest processes: with unique-instances, an older process with \
         the same instance number moves to old; and beyond the application's \
         instances, the oldest running processes move to old. A running \
         process that exits on its own, even with status 0, has crashed and \
         is started again with restart-crashing. Stopping a running process \
         moves it to old.",
    );
    page.entry(
        "old",
        "On the way out. The process is sent its stop-signal once, and its \
         kill-signal if it is still there after stop-timeout. It is never \
         restarted and disappears when it exits.",
    );
    page.entry(
        "marked",
        "Asked to stop while still starting. final-pm never sends a stop \
         signal to a process that is not ready, because a half-started \
         program may not handle it. A marked process moves to old (and is \
         then stopped) as soon as it is ready, or is killed when its \
         start-timeout runs out. It is never restarted.",
    );
    page.para(
        "The usual life of a process is queue, new, running, old, gone; a \
         process that is allowed to start passes through queue at once. A \
         new version of an application therefore never displaces the running \
         one before it is ready itself, and an older process can never \
         displace a newer one.",
    );
    page.para(
        "The daemon is at rest when every process is in running and all \
         log lines of stopped applications are written. --wait returns then; \
         while an application keeps crashing it never is.",
    );
    page.finish()
}

/// The example configuration of `--help-example` (also a test fixture).
const EXAMPLE_CONFIG: &str = r#"{
    "applications": [{
        "name": "app",
        "run": "./sample-app.js",
        "args": ["arg1", "arg2"],
        "node-args": ["--enable-source-maps"],
        "ready-on": "message",
        "instances": 4
    }]
}"#;

/// The example app of `--help-example`.
const EXAMPLE_APP: &str = r#"// sample-app.js: an HTTP server that tells final-pm when it is ready
// and finishes its requests before it exits.
const http = require('http');

console.log('started with', process.argv.slice(2)); // [ 'arg1', 'arg2' ]

const server = http.createServer((req, res) => {
    const instance = process.env.FINAL_PM_INSTANCE_NUMBER;
    res.end(`Hello from instance ${instance}\n`);
});

// In cluster mode (the default) all four processes share port 3334.
server.listen(3334, () => {
    // With "ready-on": "message", this is when the process counts as
    // ready and the process it replaces (if any) is stopped.
    process.send('ready');
});

function stop() {
    // Accept no new connections; exit once the open ones are served.
    server.close(() => process.exit(0));
}

process.on('SIGINT', stop);          // "stop-signal": "SIGINT" (default)
process.on('message', (message) => { // "stop-signal": "message"
    if (message === 'stop') stop();
});
process.on('disconnect', stop);      // "stop-signal": "disconnect""#;

/// `--help-example`: an example configuration and the app it runs.
pub(crate) fn example() -> String {
    let mut page = Page::default();
    page.title("Example");
    page.para("process-config.json:");
    page.verbatim(&indent(EXAMPLE_CONFIG));
    page.para(
        "The same as process-config.js, which may compute values, for \
         example from package.json's config (npm_package_config_*):",
    );
    page.verbatim(&indent(
        "module.exports = {\n    \
         applications: [{\n        \
         name: 'app',\n        \
         run: './sample-app.js',\n        \
         args: ['arg1', 'arg2'],\n        \
         'node-args': ['--enable-source-maps'],\n        \
         'ready-on': 'message',\n        \
         instances: Number(process.env.npm_package_config_workers) || 4,\n    \
         }],\n\
         };",
    ));
    page.para("sample-app.js, next to the configuration:");
    page.verbatim(&indent(EXAMPLE_APP));
    page.para("Try it in that folder:");
    page.verbatim(&indent(
        "final-pm --wait start app  # start 4 processes, wait until ready\n\
         final-pm show              # processes by generation\n\
         final-pm log -f app        # follow what they print (Ctrl-C ends)\n\
         final-pm start app         # replace them, one by one, gracefully\n\
         final-pm stop app          # stop them\n\
         final-pm --kill            # stop the daemon",
    ));
    page.finish()
}

/// What the configuration page says about one key.
#[derive(Debug)]
struct KeyDoc {
    /// The accepted values.
    ty: &'static str,
    /// The default, as a JSON value wherever the loader has one.
    default: String,
    /// What the key does.
    meaning: &'static str,
}

impl KeyDoc {
    fn new(ty: &'static str, default: &str, meaning: &'static str) -> Self {
        Self {
            ty,
            default: default.to_owned(),
            meaning,
        }
    }
}

fn top_key_doc(key: TopKey) -> KeyDoc {
    match key {
        TopKey::Home => KeyDoc::new(
            "string",
            "\"$HOME/.final-pm\"",
            "The daemon's folder, relative to the current folder. Together \
             with socket it decides which daemon a configuration talks to.",
        ),
        TopKey::Socket => KeyDoc {
            ty: "a path, unix:PATH or ws+unix://PATH",
            default: format!("\"{DEFAULT_SOCKET}\""),
            meaning: "The daemon's control socket, relative to home. Only \
                      Unix sockets: the daemon can start any program, so it \
                      is never reachable over a network.",
        },
        TopKey::DaemonLog => KeyDoc {
            ty: "string",
            default: format!("\"{DEFAULT_DAEMON_LOG}\""),
            meaning: "The daemon's own log, relative to home. The output of \
                      logging processes goes here too.",
        },
        TopKey::NpmGlobalConfig => KeyDoc::new(
            "string",
            "\"/etc/npmrc\"",
            "The global npm configuration file read for npm_package_config_* \
             variables. Only with --set or FINAL_PM_CONFIG_*.",
        ),
        TopKey::NpmUserConfig => KeyDoc::new(
            "string",
            "\"$HOME/.npmrc\"",
            "The user's npm configuration file; wins over npm-global-config. \
             Only with --set or FINAL_PM_CONFIG_*.",
        ),
        TopKey::IgnoreEnv => KeyDoc::new(
            "array of variable names",
            "the names listed below",
            "Variables whose values may differ from one upload to the next \
             without the application counting as changed. Apps still get \
             them. Only with --set or FINAL_PM_CONFIG_*.",
        ),
        TopKey::Applications => KeyDoc::new(
            "array of application objects",
            "[]",
            "The applications, each with the keys below.",
        ),
    }
}

fn app_key_doc(key: AppKey) -> KeyDoc {
    match key {
        AppKey::Name => KeyDoc::new(
            "string of letters, digits, _ and -",
            "\"default\"",
            "What selectors and show call the application. Unique within a \
             file; it must not start with - and cannot be all.",
        ),
        AppKey::Type => KeyDoc::new(
            "\"application\" or \"logger\"",
            "\"application\"",
            "A logger receives other applications' log records. Loggers are \
             not part of all, and are never restarted after a crash.",
        ),
        AppKey::Mode => KeyDoc::new(
            "\"cluster\" or \"fork\"",
            "\"cluster\"",
            "cluster: Node scripts become cluster workers of the daemon and \
             share listening sockets. fork: a plain child process. Programs \
             that are not Node scripts always run as fork.",
        ),
        AppKey::BasePath => KeyDoc::new(
            "string or null",
            "null",
            "The folder cwd is relative to; itself relative to the current \
             folder. null means the configuration file's folder.",
        ),
        AppKey::Cwd => KeyDoc::new(
            "string",
            "\"./\"",
            "The processes' working directory, relative to base-path.",
        ),
        AppKey::Run => KeyDoc::new(
            "string",
            "\"./server.js\"",
            "The program, relative to cwd. A .js, .cjs or .mjs file runs \
             through Node; anything else is executed directly.",
        ),
        AppKey::Args => KeyDoc::new("array of strings", "[]", "Arguments given to the program."),
        AppKey::NodeArgs => KeyDoc::new(
            "array of strings",
            "[]",
            "Options for Node, placed before the script. Node scripts only.",
        ),
        AppKey::Interpreter => KeyDoc::new(
            "string or null",
            "null",
            "The Node binary that runs Node scripts; null means node from \
             PATH. Node scripts only. (New in final-pm.)",
        ),
        AppKey::Env => KeyDoc::new(
            "object of strings, numbers or booleans",
            "{}",
            "Variables set for the processes, on top of the environment the \
             CLI had when it loaded the configuration.",
        ),
        AppKey::ReadyOn => KeyDoc::new(
            "\"listen\", \"message\" or \"instant\"",
            "\"listen\"",
            "When a new process counts as ready: once it listens on a socket; \
             once it sends the IPC message \"ready\" (or READY=1 to \
             NOTIFY_SOCKET); or at once.",
        ),
        AppKey::StopSignal => KeyDoc::new(
            "\"SIGINT\", \"SIGTERM\", \"disconnect\" or \"message\"",
            "\"SIGINT\"",
            "How a process is asked to stop: with a signal, by closing its \
             IPC channel, or with the IPC message \"stop\".",
        ),
        AppKey::KillSignal => KeyDoc::new(
            "\"SIGTERM\" or \"SIGKILL\"",
            "\"SIGKILL\"",
            "Sent by kill, and when start-timeout or stop-timeout runs out.",
        ),
        AppKey::Instances => KeyDoc::new(
            "integer, 1 to 65536",
            "1",
            "How many processes start launches and running keeps.",
        ),
        AppKey::MaxInstances => KeyDoc::new(
            "integer, 0 to 65536",
            "0",
            "Most processes of the application in new, running, old and \
             marked together; more wait in queue. 0 means no limit; \
             otherwise it must be larger than instances.",
        ),
        AppKey::UniqueInstances => KeyDoc::new(
            "boolean",
            "true",
            "Each process has its own instance number (in \
             FINAL_PM_INSTANCE_NUMBER) and replaces the process with the \
             same number. false: the newest processes are kept, whatever \
             their numbers.",
        ),
        AppKey::RestartCrashing => KeyDoc::new(
            "boolean",
            "true",
            "Start a running process again when it exits on its own.",
        ),
        AppKey::RestartNewCrashing => KeyDoc::new(
            "boolean",
            "true",
            "Start a process again when it exits before it was ready.",
        ),
        AppKey::RestartCrashingDelay => KeyDoc::new(
            "integer >= 0, milliseconds",
            "1000",
            "How long a crashed process waits before it starts again.",
        ),
        AppKey::Logger => KeyDoc::new(
            "string",
            "\"file-logger\"",
            "The logger application that receives this application's log \
             records.",
        ),
        AppKey::LoggerArgs => KeyDoc::new(
            "array of strings",
            "[\"log.txt\"]",
            "Arguments of the logging process; for file-logger, the file to \
             append to, relative to cwd.",
        ),
        AppKey::MaxBufferedLogBytes => KeyDoc::new(
            "integer >= 1, bytes",
            "262144",
            "Log records kept in memory per application and logger; when \
             full, the oldest are dropped.",
        ),
        AppKey::LogRetentionTimeout => KeyDoc::new(
            "integer, milliseconds",
            "86400000",
            "How long log keeps an application's records after its last \
             process ended.",
        ),
        AppKey::MaxLogLineLength => KeyDoc::new(
            "integer >= 1, bytes",
            "5120",
            "Longer output lines are cut; the record says how many bytes \
             were dropped.",
        ),
        AppKey::StopTimeout => KeyDoc::new(
            "integer >= 1, milliseconds, or null",
            "null",
            "Time from the stop signal to the kill signal. null waits \
             forever.",
        ),
        AppKey::StartTimeout => KeyDoc::new(
            "integer >= 1, milliseconds, or null",
            "null",
            "Time from creation to ready before the process is killed (a \
             crash). null waits forever.",
        ),
        AppKey::Builtin => KeyDoc::new(
            "boolean",
            "false",
            "Set on the daemon's own applications, such as file-logger. \
             Uploading over one or deleting one needs --force.",
        ),
    }
}

/// Appends one key: name, type and default, then its meaning.
fn key_entry(page: &mut Page, name: &str, doc: &KeyDoc) {
    page.wrap(
        "  ",
        6,
        &format!("{name}: {}; default {}", doc.ty, doc.default),
    );
    page.wrap("      ", 6, doc.meaning);
}

/// `--help-configuration`: configuration files, overrides, the environment,
/// logging, and every key with its type and default.
pub(crate) fn configuration() -> String {
    let mut page = Page::default();
    page.title("Configuration");
    page.para(
        "final-pm reads the applications it manages from a configuration \
         file, process-config.json or process-config.js. The actions that \
         upload (start, restart, scale, add) send the named applications to \
         the daemon, which keeps them until they are replaced or deleted.",
    );
    page.heading("Finding the file:");
    page.para(
        "Without -c, final-pm looks for process-config.js, then \
         process-config.json, in the current folder and then in each folder \
         above it, up to and including your home folder or /. So any \
         subfolder of a project finds the project's configuration. Finding \
         nothing is fine for actions that need no configuration.",
    );
    page.para(
        "-c PATH (--config PATH) names a file, used whatever its name, or a \
         folder, searched the same way. It may be given several times; \
         configurations with the same socket go to the same daemon. A -c \
         that finds nothing is an error.",
    );
    page.heading("JSON and JavaScript:");
    page.para(
        "A .json file holds one object with the top-level keys below. A .js \
         file is run with Node (which must then be installed) and may \
         export the configuration object, a promise of it, or a function \
         that returns either:",
    );
    page.verbatim(&indent(
        "// process-config.js\n\
         module.exports = async function () {\n    \
         return {\n        \
         applications: [{\n            \
         name: 'web',\n            \
         run: './server.js',\n            \
         instances: Number(process.env.WEB_WORKERS) || 2,\n        \
         }],\n    \
         };\n\
         };",
    ));
    page.para(
        "The script sees the CLI's environment and the \
         npm_package_config_* variables described below. \
         It fails the load if it throws, rejects, exits with a non-zero \
         status or produces no configuration.",
    );
    page.heading("Overriding values:");
    page.verbatim(&indent(
        "final-pm --set home=/tmp/fpm start all            # a top-level key\n\
         final-pm --set web:instances=8 start web          # a key of app web\n\
         final-pm --set 'web:args=[\"-p\",\"81\"]' start web   # a JSON value\n\
         FINAL_PM_CONFIG_MYAPP_INSTANCES=4 final-pm start myapp",
    ));
    page.para(
        "--set KEY=VALUE sets a top-level key and --set APP:KEY=VALUE a key \
         of application APP; the first = and the first : split the \
         argument. A VALUE that starts with \", [ or { is read as JSON, \
         anything else is a string; numbers and true/false are converted \
         to the key's type.",
    );
    page.para(
        "Environment variables FINAL_PM_CONFIG_NAME do the same: NAME, \
         lower-cased with _ turned into -, is a top-level key (as in \
         FINAL_PM_CONFIG_DAEMON_LOG) or an application name, -, and one of \
         its keys. FINAL_PM_CONFIG_MYAPP_INSTANCES=4 sets instances of \
         myapp to 4.",
    );
    page.para(
        "The file's values come first, then the environment variables, then \
         --set, so --set wins. Overrides apply to every loaded file; an \
         application override must match an application in at least one \
         of them. A misspelt key is an error, with a suggestion.",
    );
    page.heading("The environment:");
    page.para(
        "Processes get the environment the CLI had when it loaded the \
         configuration, plus npm_package_config_* variables from the \
         nearest package.json at or above the configuration file (with \
         overrides from npmrc files, as npm run does), plus the \
         application's env on top. With unique-instances they also get \
         FINAL_PM_INSTANCE_NUMBER. Changes to the variables named in \
         ignore-env do not make an application count as changed.",
    );
    page.heading("Paths:");
    page.para(
        "home and base-path are relative to the current folder; socket and \
         daemon-log to home; cwd to base-path (by default the configuration \
         file's folder); run to cwd.",
    );
    page.heading("Logging:");
    page.para(
        "Every line a process writes to stdout or stderr, and every step of \
         its life (moved to a generation, started, stopped, killed, exited), \
         becomes a log record of its application. The daemon keeps recent \
         records in memory (see max-buffered-log-bytes) for final-pm log, \
         and hands them, over an IPC channel, to a logging process: a \
         process of the logger application named by the logger key.",
    );
    page.para(
        "There is one logging process per logger, application cwd and \
         logger-args. It starts with the first process that needs it, runs \
         in the application's cwd with logger-args as arguments, and is \
         stopped once none of its applications has processes left and all \
         their records are written. Its own output goes to the daemon log. \
         The builtin logger, file-logger, appends each record as one line to \
         the file named by its first argument (log.txt by default).",
    );
    page.para(
        "A logger of your own is an application with \"type\": \"logger\" \
         that reads the records as IPC messages.",
    );
    page.heading("Top-level keys:");
    for key in TopKey::ALL {
        key_entry(&mut page, key.as_str(), &top_key_doc(key));
    }
    page.para("The default ignore-env:");
    page.wrap("    ", 4, &DEFAULT_IGNORE_ENV.join(" "));
    page.heading("Application keys:");
    for key in AppKey::ALL {
        key_entry(&mut page, key.as_str(), &app_key_doc(key));
    }
    page.para(
        "Integer and boolean keys also accept strings such as \"4\" or \
         \"true\", which is what --set and environment variables give. \
         Unknown keys are errors.",
    );
    page.finish()
}

/// `--help-all`: usage, generations, configuration and example.
pub(crate) fn all() -> String {
    [usage(), generations(), configuration(), example()].join("\n")
}

/// Indents every non-empty line of `text` by two spaces.
fn indent(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("  {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A page under construction: blocks separated by one blank line.
#[derive(Debug, Default)]
struct Page {
    text: String,
    /// The last thing written was a heading: the next block follows it
    /// without a blank line.
    tight: bool,
}

impl Page {
    /// Starts a block: one blank line after the previous one.
    fn block(&mut self) {
        if !self.text.is_empty() && !self.tight {
            self.text.push('\n');
        }
    }

    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        self.tight = false;
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }

    /// The page's title, underlined.
    fn title(&mut self, title: &str) {
        self.block();
        self.line(title);
        self.line(&"=".repeat(title.chars().count()));
    }

    fn heading(&mut self, heading: &str) {
        self.block();
        self.line(heading);
        self.tight = true;
    }

    /// A paragraph, wrapped, indented by two.
    fn para(&mut self, text: &str) {
        self.block();
        self.wrap("  ", 2, text);
    }

    /// Text printed as it is (examples, code).
    fn verbatim(&mut self, text: &str) {
        self.block();
        self.line(text);
    }

    /// A term on its own line, its explanation wrapped below it.
    fn entry(&mut self, term: &str, text: &str) {
        self.block();
        self.line(&format!("  {term}"));
        self.wrap("      ", 6, text);
    }

    /// Several entries, one after the other without blank lines.
    fn entries(&mut self, entries: &[(&str, &str)]) {
        self.block();
        for (term, text) in entries {
            self.line(&format!("  {term}"));
            self.wrap("      ", 6, text);
        }
    }

    /// A two-column list: terms, and their explanations starting at
    /// `column` (on the next line when the term is too wide).
    fn items(&mut self, column: usize, items: &[(&str, &str)]) {
        self.block();
        for (term, text) in items {
            let term = format!("  {term}");
            if term.chars().count() + 2 <= column {
                let prefix = format!("{term:<column$}");
                self.wrap(&prefix, column, text);
            } else {
                self.line(&term);
                self.wrap(&" ".repeat(column), column, text);
            }
        }
    }

    /// Word-wraps `text` to [`WIDTH`]: the first line starts with `prefix`,
    /// the others with `indent` spaces.
    fn wrap(&mut self, prefix: &str, indent: usize, text: &str) {
        let mut line = prefix.to_owned();
        let mut width = prefix.chars().count();
        let mut empty = true;
        for word in text.split_whitespace() {
            let len = word.chars().count();
            if !empty && width + 1 + len > WIDTH {
                self.line(line.trim_end());
                line = " ".repeat(indent);
                width = indent;
                empty = true;
            }
            if !empty {
                line.push(' ');
                width += 1;
            }
            line.push_str(word);
            width += len;
            empty = false;
        }
        self.line(line.trim_end());
    }

    fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::CommandFactory;
    use serde_json::Value;

    use super::*;
    use crate::config::{self, Draft, LoadOptions, Origin};

    fn pages() -> [(&'static str, String); 6] {
        [
            ("short", short()),
            ("usage", usage()),
            ("generations", generations()),
            ("example", example()),
            ("configuration", configuration()),
            ("all", all()),
        ]
    }

    fn assert_mentions(page: &str, text: &str, needles: &[&str]) {
        for needle in needles {
            assert!(text.contains(needle), "{page} does not mention {needle:?}");
        }
    }

    #[test]
    fn every_line_fits_and_is_plain_text() {
        for (name, text) in pages() {
            assert!(text.ends_with('\n'), "{name} must end with a newline");
            assert!(!text.ends_with("\n\n"), "{name} ends with a blank line");
            for (number, line) in text.lines().enumerate() {
                let width = line.chars().count();
                assert!(
                    width <= WIDTH,
                    "{name} line {}: {width} columns: {line:?}",
                    number + 1
                );
                assert!(
                    line.chars().all(|c| c == ' ' || !c.is_control()),
                    "{name} line {}: control character: {line:?}",
                    number + 1
                );
                assert_eq!(line.trim_end(), line, "{name} line {}", number + 1);
            }
        }
    }

    const OPTION_NAMES: [&str; 21] = [
        "--config",
        "-c",
        "--set",
        "--lines",
        "-n",
        "--follow",
        "-f",
        "--launch",
        "--kill",
        "--wait",
        "--force",
        "--no-upload",
        "--dry",
        "--verbose",
        "-v",
        "--json",
        "--help",
        "--help-usage",
        "--help-configuration",
        "--help-generations",
        "--help-example",
    ];

    #[test]
    fn short_lists_every_option() {
        let text = short();
        assert_mentions("short", &text, &OPTION_NAMES);
        assert_mentions(
            "short",
            &text,
            &["--help-all", "--version", SYNOPSIS, "--help-usage"],
        );
    }

    /// Every option the parser accepts is documented, so a new flag in
    /// cli.rs fails here until the help says what it does.
    #[test]
    fn short_documents_every_option_the_parser_knows() {
        let text = short();
        let command = crate::cli::Cli::command();
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    text.contains(&format!("--{long}")),
                    "--help does not document --{long}"
                );
            }
            if let Some(short) = arg.get_short() {
                assert!(
                    text.contains(&format!("-{short},")),
                    "--help does not document -{short}"
                );
            }
        }
    }

    #[test]
    fn usage_has_examples_options_selectors_actions_and_statuses() {
        let text = usage();
        assert_mentions("usage", &text, &OPTION_NAMES);
        assert_mentions("usage", &text, &crate::action::ACTION_WORDS);
        for action in crate::action::ACTION_WORDS {
            assert!(
                text.lines()
                    .any(|line| line.starts_with(&format!("  {action} "))
                        || line.contains(&format!(", {action} "))),
                "usage does not explain action {action}"
            );
        }
        assert_mentions(
            "usage",
            &text,
            &[
                "graceful",
                "final-pm start all",
                "final-pm --set worker:instances=4 start worker",
                "final-pm stop pid=43342 pid=3452",
                "final-pm stop worker",
                "final-pm stop running:worker/0 running:worker/1",
                "Selectors:",
                "NAME/N",
                "id=N",
                "pid=N",
                "  all",
                "queue:",
                "new:",
                "running:",
                "old:",
                "marked:",
                "Exit status:",
                "  0 ",
                "  1 ",
                "  2 ",
                "-n",
                "-f",
            ],
        );
    }

    #[test]
    fn generations_explains_all_five() {
        let text = generations();
        for generation in ["queue", "new", "running", "old", "marked"] {
            assert!(
                text.lines().any(|line| line == format!("  {generation}")),
                "generations has no entry for {generation}"
            );
        }
    }

    #[test]
    fn example_mentions_its_parts() {
        let text = example();
        assert_mentions(
            "example",
            &text,
            &[
                "process-config.json",
                "\"name\": \"app\"",
                "./sample-app.js",
                "\"args\": [\"arg1\", \"arg2\"]",
                "node-args",
                "\"ready-on\": \"message\"",
                "\"instances\": 4",
                "3334",
                "process.send('ready')",
                "'stop'",
                "SIGINT",
            ],
        );
    }

    /// The example configuration is one final-pm loads as it says.
    #[test]
    fn example_config_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("process-config.json"), EXAMPLE_CONFIG).expect("write");
        let groups = config::load(&LoadOptions {
            cwd: dir.path().to_owned(),
            configs: vec![],
            sets: vec![],
            env: vec![(
                "HOME".to_owned(),
                "/nonexistent-final-pm-test-home".to_owned(),
            )],
        })
        .unwrap_or_else(|err| panic!("the example configuration does not load: {err}"));
        let apps = &groups[0].apps;
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].name, "app");
        assert_eq!(apps[0].instances, 4);
        assert_eq!(apps[0].args, ["arg1", "arg2"]);
        assert!(Path::new(&apps[0].run).ends_with("sample-app.js"));
    }

    /// The example app is valid JavaScript (checked when node is there).
    #[test]
    fn example_app_parses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sample-app.js");
        std::fs::write(&file, EXAMPLE_APP).expect("write");
        match std::process::Command::new("node")
            .arg("--check")
            .arg(&file)
            .output()
        {
            Ok(output) => assert!(
                output.status.success(),
                "node --check: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(err) => eprintln!("node not available ({err}); example app not checked"),
        }
    }

    #[test]
    fn configuration_lists_every_key() {
        let text = configuration();
        for key in TopKey::ALL {
            assert!(
                text.contains(&format!("\n  {}: ", key.as_str())),
                "configuration does not list top-level key {}",
                key.as_str()
            );
        }
        for key in AppKey::ALL {
            assert!(
                text.contains(&format!("\n  {}: ", key.as_str())),
                "configuration does not list application key {}",
                key.as_str()
            );
        }
        assert_mentions("configuration", &text, &DEFAULT_IGNORE_ENV);
        assert_mentions(
            "configuration",
            &text,
            &[
                "process-config.js",
                "process-config.json",
                "-c",
                "--set KEY=VALUE",
                "APP:KEY=VALUE",
                "FINAL_PM_CONFIG_MYAPP_INSTANCES=4",
                "promise",
                "function",
                "interpreter",
                "file-logger",
                "logging process",
            ],
        );
    }

    /// Each documented application default is what the loader fills in.
    #[test]
    fn documented_defaults_match_the_loader() {
        let origin = Origin::CommandLine("test".to_owned());
        let defaults = serde_json::to_value(&Draft::new(&origin).app).expect("serialize");
        let mut checked = 0;
        for key in AppKey::ALL {
            let Some(actual) = defaults.get(key.as_str()) else {
                continue;
            };
            let doc = app_key_doc(key);
            let documented: Value = serde_json::from_str(&doc.default)
                .unwrap_or_else(|err| panic!("default of {} is not JSON: {err}", key.as_str()));
            assert_eq!(&documented, actual, "default of {}", key.as_str());
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} defaults checked");
        // Keys the protocol leaves out when unset.
        for key in [AppKey::BasePath, AppKey::Interpreter] {
            assert_eq!(app_key_doc(key).default, "null");
        }
        assert_eq!(app_key_doc(AppKey::Builtin).default, "false");
    }

    #[test]
    fn all_is_every_long_page() {
        let text = all();
        for page in [usage(), generations(), configuration(), example()] {
            assert!(text.contains(&page));
        }
    }
}
