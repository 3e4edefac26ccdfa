//! A daemon running in the test's runtime, a client, small app scripts, and
//! a guard that kills every process group the daemon reported, on drop, even
//! when the test fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use final_pm_daemon::{Daemon, DaemonConfig};
use final_pm_protocol::{
    AppConfig, Client, LogKind, LogRecord, ProcessInfo, ReadyOn, Request, Response,
};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub client: Client,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pids: BTreeSet<u32>,
}

impl Fixture {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let config = DaemonConfig {
            socket: home.join("daemon.sock"),
            home,
            file_logger: None,
        };
        let socket = config.socket.clone();
        let daemon = Daemon::bind(config).unwrap();
        let token = CancellationToken::new();
        let shutdown = token.clone();
        let task =
            tokio::spawn(
                async move { daemon.run(async move { shutdown.cancelled().await }).await },
            );
        let client = Client::connect(&socket, "fixture").await.unwrap();
        Self {
            dir,
            client,
            token,
            task: Some(task),
            pids: BTreeSet::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an executable shell script and returns an app running it.
    pub fn script_app(&self, name: &str, body: &str) -> AppConfig {
        let path = self.path(&format!("{name}.sh"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut app = AppConfig::new(
            name,
            self.dir.path().to_str().unwrap(),
            path.to_str().unwrap(),
        );
        app.env
            .insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        app.ready_on = ReadyOn::Instant;
        app.restart_crashing_delay = 0;
        app
    }

    pub async fn call(&mut self, request: Request) -> Response {
        let response = self.client.request(request).await.unwrap();
        self.remember().await;
        response
    }

    pub async fn add(&mut self, app: AppConfig) {
        let reply = self
            .call(Request::Add {
                app: Box::new(app),
                force: false,
            })
            .await;
        assert!(matches!(reply, Response::Added { .. }), "{reply:?}");
    }

    pub async fn start_app(&mut self, name: &str, number: u32) -> ProcessInfo {
        match self
            .call(Request::Start {
                name: name.into(),
                number: Some(number),
            })
            .await
        {
            Response::Started { process } => *process,
            other => panic!("start {name}: {other:?}"),
        }
    }

    pub async fn processes(&mut self) -> Vec<ProcessInfo> {
        match self
            .client
            .request(Request::Info { usage: false })
            .await
            .unwrap()
        {
            Response::Info { processes, .. } => {
                self.pids.extend(processes.iter().filter_map(|p| p.pid));
                processes
            }
            other => panic!("{other:?}"),
        }
    }

    pub async fn process(&mut self, id: final_pm_protocol::ProcessId) -> Option<ProcessInfo> {
        self.processes().await.into_iter().find(|p| p.id == id)
    }

    async fn remember(&mut self) {
        let _ = self.processes().await;
    }

    pub async fn logs(&mut self, app: &str) -> Vec<LogRecord> {
        match self
            .client
            .request(Request::Logs {
                name: app.into(),
                ids: vec![],
                lines: None,
                follow: false,
            })
            .await
        {
            Ok(Response::Logs { records }) => records,
            other => panic!("{other:?}"),
        }
    }

    /// The buffered records of `app` of one kind.
    pub async fn logs_of(&mut self, app: &str, kind: LogKind) -> Vec<LogRecord> {
        let mut records = self.logs(app).await;
        records.retain(|r| r.kind == kind);
        records
    }

    /// The texts of `app`'s buffered records of one kind.
    pub async fn texts_of(&mut self, app: &str, kind: LogKind) -> Vec<String> {
        let records = self.logs_of(app, kind).await;
        records.into_iter().map(|r| r.text).collect()
    }

    /// The app's records once its exit record is among them (polled every
    /// 20 ms for up to 10 s). A process's pid can be gone before the
    /// daemon has read its last output and pushed its exit record, which
    /// comes after all of its output.
    pub async fn logs_through_exit(&mut self, app: &str) -> Vec<LogRecord> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.logs(app).await;
            if records.iter().any(|r| r.kind == LogKind::Exit) {
                return records;
            }
            assert!(Instant::now() < deadline, "no exit record: {records:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `app` has logged at least `count` stdout lines; returns
    /// them. A process is ready (`instant`) before its first line is out.
    pub async fn wait_stdout(&mut self, app: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.texts_of(app, LogKind::Stdout).await;
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{app} logged {} of {count} stdout lines: {lines:?}",
                lines.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls `cond` on the process list every 20 ms until it holds or 10 s pass.
    pub async fn wait_until(
        &mut self,
        what: &str,
        cond: impl Fn(&[ProcessInfo]) -> bool,
    ) -> Vec<ProcessInfo> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let processes = self.processes().await;
            if cond(&processes) {
                return processes;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; processes: {processes:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_rest(&mut self) {
        let reply = tokio::time::timeout(
            Duration::from_secs(15),
            self.client.request(Request::Wait { all: false }),
        )
        .await
        .expect("wait did not return")
        .unwrap();
        assert_eq!(reply, Response::Ok {});
        self.remember().await;
    }

    /// Tears the daemon down without a shutdown, as a panicking embedder
    /// would (its task is dropped mid-flight). Borrows rather than consumes, so the fixture's own kill-on-drop
    /// guard does not run before the test has looked.
    pub async fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub async fn shutdown(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

pub use final_pm_daemon::procfs::is_alive as alive;

pub async fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub async fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(Ok(pid)) = std::fs::read_to_string(path).ok().map(|t| t.trim().parse()) {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn has(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok()
}
