//! From an action, its selectors and the daemon's state to the calls that
//! carry it out. Pure: the same inputs always give the same calls, so every
//! rule here is tested without a daemon.

use std::collections::BTreeMap;

use final_pm_protocol::{AppInfo, AppType, Generation, ProcessId, ProcessInfo, Request};

use crate::action::Action;
use crate::selector::{Mode, Selector, Target};

/// What the daemon has: apps and processes in table order (an `info` reply).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) applications: Vec<AppInfo>,
    pub(crate) processes: Vec<ProcessInfo>,
}

impl Snapshot {
    pub(crate) fn app(&self, name: &str) -> Option<&AppInfo> {
        self.applications.iter().find(|a| a.config.name == name)
    }

    /// The type of a process's application: the outdated copy it carries if
    /// any, else the current app of its name.
    pub(crate) fn app_type_of(&self, process: &ProcessInfo) -> AppType {
        process
            .app
            .as_ref()
            .or_else(|| self.app(&process.app_name))
            .map_or(AppType::Application, |app| app.config.app_type)
    }

    /// Whether any app or process has this app name.
    fn knows_app(&self, name: &str) -> bool {
        self.app(name).is_some() || self.processes.iter().any(|p| p.app_name == name)
    }

    /// The apps the selectors select, in table order.
    pub(crate) fn selected_apps(
        &self,
        selectors: &[Selector],
        with_loggers: bool,
    ) -> Vec<&AppInfo> {
        self.applications
            .iter()
            .filter(|app| selectors.iter().any(|s| s.matches_app(app, with_loggers)))
            .collect()
    }

    /// The processes the selectors select, in table order.
    pub(crate) fn selected_processes(
        &self,
        selectors: &[Selector],
        mode: Mode,
        with_loggers: bool,
    ) -> Vec<&ProcessInfo> {
        self.processes
            .iter()
            .filter(|p| {
                let app_type = self.app_type_of(p);
                selectors
                    .iter()
                    .any(|s| s.matches_process(p, app_type, mode, with_loggers))
            })
            .collect()
    }

    /// Selectors that name something the daemon does not have at all: an
    /// unknown app, or an id or pid of no process. (A known app without
    /// matching processes is not a problem here.)
    pub(crate) fn unknown_targets(&self, selectors: &[Selector]) -> Vec<String> {
        selectors
            .iter()
            .filter_map(|s| match &s.target {
                Target::All => None,
                Target::App { name, .. } if self.knows_app(name) => None,
                Target::App { name, .. } => Some(format!("No such application: {name}")),
                Target::Id(id) if self.processes.iter().any(|p| p.id.0 == *id) => None,
                Target::Pid(pid) if self.processes.iter().any(|p| p.pid == Some(*pid)) => None,
                Target::Id(_) | Target::Pid(_) => Some(format!("No process matches {}", s.word)),
            })
            .collect()
    }
}

/// The calls of an action, and what went wrong while choosing them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Plan {
    pub(crate) calls: Vec<Request>,
    /// Selectors that had to match and did not; each fails the command.
    pub(crate) problems: Vec<String>,
    /// Things worth saying that are not failures (nothing to stop).
    pub(crate) notes: Vec<String>,
}

/// Computes the calls of `start`, `stop`, `kill`, `scale` and `delete`. The
/// other actions make no calls of their own.
pub(crate) fn plan(
    action: Action,
    selectors: &[Selector],
    snapshot: &Snapshot,
    force: bool,
) -> Plan {
    match action {
        Action::Start => start(selectors, snapshot),
        Action::Stop => per_process(selectors, snapshot, "stop", |id| Request::Stop { id }),
        Action::Kill => per_process(selectors, snapshot, "kill", |id| Request::Kill { id }),
        Action::Scale => scale(selectors, snapshot),
        Action::Delete => delete(selectors, snapshot, force),
        Action::Show | Action::Inspect | Action::Add | Action::Log => Plan::default(),
    }
}

/// `start`/`restart`: `instances` new processes per selected app, one of
/// number N for `app/N`, one replacement per process for `id=`/`pid=`.
/// A generation prefix on an app selector changes nothing (new processes
/// have no generation yet).
fn start(selectors: &[Selector], snapshot: &Snapshot) -> Plan {
    let mut plan = Plan::default();
    let start = |name: &str, number: u32| Request::Start {
        name: name.to_owned(),
        number: Some(number),
    };
    for selector in selectors {
        match &selector.target {
            Target::All | Target::App { .. } => {
                let (name, number) = match &selector.target {
                    Target::App { name, number } => (Some(name.as_str()), *number),
                    _ => (None, None),
                };
                let targets: Vec<&AppInfo> = snapshot
                    .applications
                    .iter()
                    .filter(|a| match name {
                        // A logger named explicitly is started too; `all`
                        // means the applications.
                        Some(name) => a.config.name == name,
                        None => a.config.app_type == AppType::Application,
                    })
                    .collect();
                if targets.is_empty() {
                    if let Some(name) = name {
                        plan.problems.push(format!("No such application: {name}"));
                    } else {
                        plan.notes.push("There are no applications to start".into());
                    }
                }
                for app in targets {
                    match number {
                        Some(n) => plan.calls.push(start(&app.config.name, n)),
                        None => plan
                            .calls
                            .extend((0..app.config.instances).map(|n| start(&app.config.name, n))),
                    }
                }
            }
            Target::Id(_) | Target::Pid(_) => {
                let matched: Vec<&ProcessInfo> = snapshot
                    .processes
                    .iter()
                    .filter(|p| {
                        selector.matches_process(p, snapshot.app_type_of(p), Mode::Loose, true)
                    })
                    .collect();
                if matched.is_empty() {
                    plan.problems
                        .push(format!("No process matches {}", selector.word));
                }
                for process in matched {
                    plan.calls.push(start(&process.app_name, process.number));
                }
            }
        }
    }
    plan
}

/// `stop` and `kill`: one call per selected process, in table order.
fn per_process(
    selectors: &[Selector],
    snapshot: &Snapshot,
    verb: &str,
    call: impl Fn(ProcessId) -> Request,
) -> Plan {
    let mut plan = Plan {
        problems: snapshot.unknown_targets(selectors),
        ..Plan::default()
    };
    let processes = snapshot.selected_processes(selectors, Mode::Loose, false);
    for selector in selectors {
        let known =
            !matches!(&selector.target, Target::App { name, .. } if !snapshot.knows_app(name));
        let matches_any = processes
            .iter()
            .any(|p| selector.matches_process(p, snapshot.app_type_of(p), Mode::Loose, false));
        if known && !matches_any && !matches!(selector.target, Target::Id(_) | Target::Pid(_)) {
            plan.notes
                .push(format!("No process to {verb} matches {}", selector.word));
        }
    }
    plan.calls = processes.iter().map(|p| call(p.id)).collect();
    plan
}

/// `scale`: for every selected app, processes numbered `instances` and up
/// are stopped and missing numbers below `instances` are started. Only the
/// selected processes in queue, new and running count (so `running:web`
/// counts only running ones). Processes are grouped by number, so a
/// replacement still in `new` next to its running predecessor is one
/// instance, not two.
fn scale(selectors: &[Selector], snapshot: &Snapshot) -> Plan {
    let mut plan = Plan {
        problems: snapshot.unknown_targets(selectors),
        ..Plan::default()
    };
    for selector in selectors {
        if !selector.selects_apps() {
            plan.problems.push(format!(
                "scale takes application names, not processes: {}",
                selector.word
            ));
        }
    }
    let processes = snapshot.selected_processes(selectors, Mode::Loose, false);
    for app in snapshot.selected_apps(selectors, false) {
        let name = &app.config.name;
        let mut by_number: BTreeMap<u32, Vec<&ProcessInfo>> = BTreeMap::new();
        for process in processes.iter().filter(|p| {
            p.app_name == *name
                && matches!(
                    p.generation,
                    Generation::Queue | Generation::New | Generation::Running
                )
        }) {
            by_number.entry(process.number).or_default().push(process);
        }
        let instances = app.config.instances;
        for (_, extra) in by_number.range(instances..) {
            plan.calls
                .extend(extra.iter().map(|p| Request::Stop { id: p.id }));
        }
        for number in 0..instances {
            if !by_number.contains_key(&number) {
                plan.calls.push(Request::Start {
                    name: name.clone(),
                    number: Some(number),
                });
            }
        }
    }
    plan
}

/// `delete`: the selected apps (loggers only when named).
fn delete(selectors: &[Selector], snapshot: &Snapshot, force: bool) -> Plan {
    let mut plan = Plan {
        problems: snapshot.unknown_targets(selectors),
        ..Plan::default()
    };
    for selector in selectors {
        if !selector.selects_apps() {
            plan.problems.push(format!(
                "delete takes application names, not processes: {}",
                selector.word
            ));
        }
    }
    plan.calls = snapshot
        .selected_apps(selectors, false)
        .into_iter()
        .map(|app| Request::Delete {
            name: app.config.name.clone(),
            force,
        })
        .collect();
    plan
}

/// The progress line before a batch runs: what it is going to do, counted by
/// kind, always in the same order.
pub(crate) fn summary(calls: &[Request]) -> String {
    let count = |f: fn(&Request) -> bool| calls.iter().filter(|c| f(c)).count();
    let processes = |n: usize| if n == 1 { "process" } else { "processes" };
    let mut parts = Vec::new();
    let deletes = count(|c| matches!(c, Request::Delete { .. }));
    if deletes > 0 {
        let noun = if deletes == 1 {
            "application"
        } else {
            "applications"
        };
        parts.push(format!("delete {deletes} {noun}"));
    }
    for (verb, n) in [
        ("stop", count(|c| matches!(c, Request::Stop { .. }))),
        ("start", count(|c| matches!(c, Request::Start { .. }))),
        ("kill", count(|c| matches!(c, Request::Kill { .. }))),
    ] {
        if n > 0 {
            parts.push(format!("{verb} {n} {}", processes(n)));
        }
    }
    if count(|c| matches!(c, Request::Wait { .. })) > 0 {
        parts.push("wait for completion".into());
    }
    if count(|c| matches!(c, Request::KillDaemon {})) > 0 {
        parts.push("kill daemon".into());
    }
    let mut text = parts.join(", then ");
    if let Some(first) = text.get(..1) {
        text.replace_range(..1, &first.to_uppercase());
    }
    text.push_str("...");
    text
}

/// A call as `-v` and `--dry` print it: `start("web", {"number":0})`.
pub(crate) fn describe(call: &Request) -> String {
    match call {
        Request::Start { name, number } => {
            format!("start({name:?}, {{\"number\":{}}})", number.unwrap_or(0))
        }
        Request::Stop { id } => format!("stop({id})"),
        Request::Kill { id } => format!("kill({id})"),
        Request::Delete { name, force } => format!("delete({name:?}, {{\"force\":{force}}})"),
        Request::Add { app, force } => format!("add({:?}, {{\"force\":{force}}})", app.name),
        Request::Wait { all } => {
            if *all {
                "wait({\"all\":true})".into()
            } else {
                "wait()".into()
            }
        }
        Request::KillDaemon {} => "kill_daemon()".into(),
        other => other.type_name().to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use final_pm_protocol::AppConfig;

    use super::*;

    fn app(name: &str, instances: u32) -> AppInfo {
        let mut config = AppConfig::new(name, "/srv", "/srv/app.sh");
        config.instances = instances;
        AppInfo {
            revision: 1,
            config,
        }
    }

    pub(crate) fn process(id: u64, app: &str, number: u32, generation: Generation) -> ProcessInfo {
        ProcessInfo {
            id: ProcessId(id),
            pid: Some(1000 + id as u32),
            app_name: app.into(),
            number,
            generation,
            args: vec![],
            cwd: "/srv".into(),
            crashes: 0,
            started: true,
            ready: generation == Generation::Running,
            killing: false,
            revision: 1,
            outdated: false,
            start_time_ms: Some(1),
            create_time_ms: 1,
            app: None,
            usage: None,
        }
    }

    fn selectors(words: &str) -> Vec<Selector> {
        words
            .split_whitespace()
            .map(|w| Selector::parse(w).unwrap())
            .collect()
    }

    fn snapshot() -> Snapshot {
        let mut logger = app("file-logger", 1);
        logger.config.app_type = AppType::Logger;
        Snapshot {
            applications: vec![app("web", 2), app("worker", 1), logger],
            processes: vec![
                process(1, "web", 0, Generation::Running),
                process(2, "web", 1, Generation::Running),
                process(3, "web", 0, Generation::New),
                process(4, "worker", 0, Generation::Running),
                process(5, "file-logger", 0, Generation::Running),
                process(6, "web", 2, Generation::Old),
            ],
        }
    }

    fn ids(plan: &Plan) -> Vec<String> {
        plan.calls.iter().map(describe).collect()
    }

    #[test]
    fn start_makes_instances_per_app_one_per_number_and_one_per_process() {
        let s = snapshot();
        let plan = plan_for(Action::Start, "web", &s);
        assert_eq!(
            ids(&plan),
            [
                "start(\"web\", {\"number\":0})",
                "start(\"web\", {\"number\":1})"
            ]
        );
        let plan = plan_for(Action::Start, "all", &s);
        assert_eq!(plan.calls.len(), 3, "loggers are not started by all");
        let plan = plan_for(Action::Start, "web/1 id=4 pid=1002", &s);
        assert_eq!(
            ids(&plan),
            [
                "start(\"web\", {\"number\":1})",
                "start(\"worker\", {\"number\":0})",
                "start(\"web\", {\"number\":1})"
            ]
        );
        let plan = plan_for(Action::Start, "nope id=99", &s);
        assert_eq!(
            plan.problems,
            ["No such application: nope", "No process matches id=99"]
        );
    }

    fn plan_for(action: Action, words: &str, s: &Snapshot) -> Plan {
        plan(action, &selectors(words), s, false)
    }

    #[test]
    fn stop_and_kill_select_processes_loosely() {
        let s = snapshot();
        assert_eq!(
            ids(&plan_for(Action::Stop, "web", &s)),
            ["stop(1)", "stop(2)", "stop(3)", "stop(6)"]
        );
        assert_eq!(
            ids(&plan_for(Action::Stop, "running:web", &s)),
            ["stop(1)", "stop(2)"]
        );
        assert_eq!(
            ids(&plan_for(Action::Kill, "web/0", &s)),
            ["kill(1)", "kill(3)"]
        );
        assert_eq!(
            ids(&plan_for(Action::Stop, "all", &s)),
            ["stop(1)", "stop(2)", "stop(3)", "stop(4)", "stop(6)"],
            "loggers are not stopped by all"
        );
        assert_eq!(
            ids(&plan_for(Action::Stop, "pid=1004 id=2", &s)),
            ["stop(2)", "stop(4)"]
        );
        let plan = plan_for(Action::Stop, "marked:web ghost id=77", &s);
        assert!(plan.calls.is_empty());
        assert_eq!(
            plan.problems,
            ["No such application: ghost", "No process matches id=77"]
        );
        assert_eq!(plan.notes, ["No process to stop matches marked:web"]);
    }

    #[test]
    fn scale_counts_numbers_not_processes() {
        let mut s = snapshot();
        // web has numbers 0 (running + its replacement in new) and 1.
        s.applications[0].config.instances = 1;
        assert_eq!(ids(&plan_for(Action::Scale, "web", &s)), ["stop(2)"]);
        s.applications[0].config.instances = 4;
        assert_eq!(
            ids(&plan_for(Action::Scale, "web", &s)),
            [
                "start(\"web\", {\"number\":2})",
                "start(\"web\", {\"number\":3})"
            ],
            "the old web/2 does not count"
        );
        s.applications[0].config.instances = 0;
        assert_eq!(
            ids(&plan_for(Action::Scale, "web", &s)),
            ["stop(1)", "stop(3)", "stop(2)"]
        );
        let plan = plan_for(Action::Scale, "web/0", &s);
        assert!(plan.calls.is_empty());
        assert_eq!(
            plan.problems,
            ["scale takes application names, not processes: web/0"]
        );
    }

    #[test]
    fn delete_takes_apps_and_passes_force() {
        let s = snapshot();
        assert_eq!(
            ids(&plan(Action::Delete, &selectors("all"), &s, true)),
            [
                "delete(\"web\", {\"force\":true})",
                "delete(\"worker\", {\"force\":true})"
            ]
        );
        assert_eq!(
            ids(&plan_for(Action::Delete, "file-logger", &s)),
            ["delete(\"file-logger\", {\"force\":false})"]
        );
        assert_eq!(
            plan_for(Action::Delete, "nope", &s).problems,
            ["No such application: nope"]
        );
    }

    #[test]
    fn summary_counts_in_a_fixed_order() {
        let calls = vec![
            Request::Start {
                name: "web".into(),
                number: Some(0),
            },
            Request::Stop { id: ProcessId(1) },
            Request::Stop { id: ProcessId(2) },
            Request::Delete {
                name: "x".into(),
                force: false,
            },
            Request::Wait { all: false },
            Request::KillDaemon {},
        ];
        assert_eq!(
            summary(&calls),
            "Delete 1 application, then stop 2 processes, then start 1 process, \
             then wait for completion, then kill daemon..."
        );
    }
}
