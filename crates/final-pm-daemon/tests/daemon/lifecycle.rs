//! The lifecycle with real processes, through the protocol.

use std::time::Duration;

use final_pm_protocol::{Generation, KillSignal, LogKind, ReadyOn, Request, Response, StopSignal};

use crate::fixture::*;

/// A script that reports ready over the IPC channel (fd 3) after `delay`
/// seconds and stops on SIGINT.
fn ipc_ready(delay: &str) -> String {
    format!(
        "trap 'exit 0' INT\nsleep {delay}\necho '\"ready\"' >&3\nwhile true; do sleep 0.05; done"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_stops_the_old_process_only_after_the_new_one_is_ready() {
    let mut f = Fixture::start().await;
    let mut app = f.script_app("web", &ipc_ready("0.4"));
    app.ready_on = ReadyOn::Message;
    f.add(app).await;
    let first = f.start_app("web", 0).await;
    f.wait_rest().await;
    let old_pid = f.process(first.id).await.unwrap().pid.unwrap();

    let second = f.start_app("web", 0).await;
    // While the replacement starts, the old process keeps running.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let old = f.process(first.id).await.unwrap();
    assert_eq!(old.generation, Generation::Running);
    assert!(alive(old_pid));
    assert_eq!(
        f.process(second.id).await.unwrap().generation,
        Generation::New
    );

    f.wait_rest().await;
    assert!(
        wait_gone(old_pid).await,
        "old process survived its replacement"
    );
    let records = f.logs("web").await;
    let ready_at = records
        .iter()
        .find(|r| {
            r.process.as_ref().unwrap().id == second.id && r.text == "moved to running generation"
        })
        .unwrap()
        .timestamp;
    let stop_at = records
        .iter()
        .find(|r| r.process.as_ref().unwrap().id == first.id && r.kind == LogKind::Stop)
        .unwrap()
        .timestamp;
    assert!(
        stop_at >= ready_at,
        "old got its stop signal before the new one was ready"
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_via_notify_socket_and_listening_port() {
    if !has("python3") {
        eprintln!("skipped: python3 not installed");
        return;
    }
    let mut f = Fixture::start().await;
    let mut notify = f.script_app(
        "notify",
        "exec python3 -c 'import os,socket,time\ntime.sleep(0.3)\np=os.environ[\"NOTIFY_SOCKET\"]\n\
         s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.connect(\"\\0\"+p[1:])\ns.send(b\"READY=1\")\ntime.sleep(60)'",
    );
    notify.ready_on = ReadyOn::Message;
    let mut listen = f.script_app(
        "listen",
        "exec python3 -c 'import socket,time\ntime.sleep(0.3)\ns=socket.socket()\ns.bind((\"127.0.0.1\",0))\n\
         s.listen()\ntime.sleep(60)'",
    );
    listen.ready_on = ReadyOn::Listen;
    f.add(notify).await;
    f.add(listen).await;
    let a = f.start_app("notify", 0).await;
    let b = f.start_app("listen", 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.process(a.id).await.unwrap().generation, Generation::New);
    assert_eq!(f.process(b.id).await.unwrap().generation, Generation::New);
    f.wait_rest().await;
    assert_eq!(
        f.process(a.id).await.unwrap().generation,
        Generation::Running
    );
    assert_eq!(
        f.process(b.id).await.unwrap().generation,
        Generation::Running
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_app_calling_process_send_ready() {
    if !has("node") {
        eprintln!("skipped: node not installed");
        return;
    }
    let mut f = Fixture::start().await;
    let script = f.path("app.js");
    std::fs::write(
        &script,
        "setTimeout(() => process.send('ready'), 300);\nprocess.on('message', m => { if (m === 'stop') process.exit(0); });\n",
    )
    .unwrap();
    let mut app = f.script_app("node", "");
    app.run = script.to_str().unwrap().to_owned();
    app.ready_on = ReadyOn::Message;
    app.stop_signal = StopSignal::Message;
    f.add(app).await;
    let p = f.start_app("node", 0).await;
    let p_id = p.id;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.process(p.id).await.unwrap().generation, Generation::New);
    f.wait_rest().await;
    let pid = f.process(p.id).await.unwrap().pid.unwrap();
    assert_eq!(f.call(Request::Stop { id: p.id }).await, Response::Ok {});
    assert!(wait_gone(pid).await);
    // The pid is gone before the daemon has reported the exit: poll.
    f.wait_until("the process is gone", |ps| ps.iter().all(|p| p.id != p_id))
        .await;
    let exit = f.logs_of("node", LogKind::Exit).await.remove(0);
    assert_eq!(
        exit.text, "code=0 signal=null",
        "stopped by the 'stop' message"
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_process_is_restarted_after_its_delay_and_not_when_disabled() {
    let mut f = Fixture::start().await;
    let mut app = f.script_app("crash", "sleep 0.05; exit 3");
    app.restart_crashing_delay = 200;
    f.add(app).await;
    let p = f.start_app("crash", 0).await;
    f.wait_until("two crashes", |ps| {
        ps.iter().any(|q| q.id == p.id && q.crashes >= 2)
    })
    .await;
    let mut calm = f.script_app("calm", "sleep 0.05; exit 3");
    calm.restart_crashing = false;
    calm.restart_new_crashing = false;
    f.add(calm).await;
    let q = f.start_app("calm", 0).await;
    f.wait_until("calm gone", |ps| ps.iter().all(|x| x.id != q.id))
        .await;
    let exits = f.logs_of("calm", LogKind::Exit).await.len();
    assert_eq!(exits, 1);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchild_ignoring_signals_is_gone_after_stop_kill_and_kill_daemon() {
    let body = "sh -c 'trap \"\" INT TERM; echo $$ > \"$0\"; while true; do sleep 0.05; done' \"$GRANDCHILD\" &\n\
                trap 'exit 0' INT\nwhile true; do sleep 0.05; done";
    for how in ["stop", "kill", "kill_daemon"] {
        let mut f = Fixture::start().await;
        let mut app = f.script_app("fam", body);
        let marker = f.path("grandchild.pid");
        app.env
            .insert("GRANDCHILD".into(), marker.to_str().unwrap().to_owned());
        app.restart_crashing = false;
        f.add(app).await;
        let p = f.start_app("fam", 0).await;
        f.wait_rest().await;
        let grandchild = read_pid(&marker).await;
        assert!(alive(grandchild));
        match how {
            "stop" => assert_eq!(f.call(Request::Stop { id: p.id }).await, Response::Ok {}),
            "kill" => assert_eq!(f.call(Request::Kill { id: p.id }).await, Response::Ok {}),
            _ => {
                f.shutdown().await;
                assert!(
                    wait_gone(grandchild).await,
                    "grandchild survived kill_daemon"
                );
                continue;
            }
        }
        assert!(wait_gone(grandchild).await, "grandchild survived {how}");
        f.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_timeout_escalates_to_the_kill_signal() {
    let mut f = Fixture::start().await;
    // Ready only once the trap is set, or the stop could come first.
    let mut app = f.script_app(
        "stubborn",
        "trap '' INT\necho '\"ready\"' >&3\nwhile true; do sleep 0.05; done",
    );
    app.ready_on = ReadyOn::Message;
    app.stop_timeout = Some(300);
    app.kill_signal = KillSignal::Sigkill;
    f.add(app).await;
    let p = f.start_app("stubborn", 0).await;
    f.wait_rest().await;
    let pid = f.process(p.id).await.unwrap().pid.unwrap();
    f.call(Request::Stop { id: p.id }).await;
    assert!(wait_gone(pid).await);
    let records = f.logs_through_exit("stubborn").await;
    let kinds: Vec<LogKind> = records.iter().map(|r| r.kind).collect();
    assert!(kinds.contains(&LogKind::StopTimeout), "{kinds:?}");
    let exit = records
        .into_iter()
        .find(|r| r.kind == LogKind::Exit)
        .unwrap();
    assert_eq!(exit.text, "code=null signal=SIGKILL");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_timeout_kills_and_respawns() {
    let mut f = Fixture::start().await;
    let mut app = f.script_app("golem", "while true; do sleep 0.05; done");
    app.ready_on = ReadyOn::Message;
    app.start_timeout = Some(200);
    app.restart_crashing_delay = 100;
    f.add(app).await;
    let p = f.start_app("golem", 0).await;
    f.wait_until("a start-timeout respawn", |ps| {
        ps.iter().any(|q| q.id == p.id && q.crashes >= 1)
    })
    .await;
    let kinds: Vec<LogKind> = f.logs("golem").await.iter().map(|r| r.kind).collect();
    assert!(kinds.contains(&LogKind::StartTimeout), "{kinds:?}");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signals_message_and_disconnect_and_send() {
    let mut f = Fixture::start().await;
    // Echoes every IPC line to stdout; exits on "stop" or when fd 3 closes.
    let body = "while read -r line <&3; do echo \"ipc $line\"; [ \"$line\" = '\"stop\"' ] && exit 0; done; echo eof; exit 0";
    let mut by_message = f.script_app("bymsg", body);
    by_message.stop_signal = StopSignal::Message;
    let mut by_disconnect = f.script_app("bydisc", body);
    by_disconnect.stop_signal = StopSignal::Disconnect;
    f.add(by_message).await;
    f.add(by_disconnect).await;
    let a = f.start_app("bymsg", 0).await;
    let b = f.start_app("bydisc", 0).await;
    f.wait_rest().await;
    let sent = f
        .call(Request::Send {
            id: a.id,
            message: serde_json::json!({"hello": [1, 2]}),
        })
        .await;
    assert_eq!(sent, Response::Ok {});
    f.call(Request::Stop { id: a.id }).await;
    f.call(Request::Stop { id: b.id }).await;
    f.wait_until("both gone", |ps| ps.is_empty()).await;
    let a_out = f.texts_of("bymsg", LogKind::Stdout).await;
    assert_eq!(a_out, ["ipc {\"hello\":[1,2]}", "ipc \"stop\""]);
    let b_out = f.texts_of("bydisc", LogKind::Stdout).await;
    assert_eq!(b_out, ["eof"]);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_instances_queues_starts() {
    let mut f = Fixture::start().await;
    let mut app = f.script_app("capped", "while true; do sleep 0.05; done");
    app.ready_on = ReadyOn::Message;
    app.instances = 1;
    app.max_instances = 2;
    f.add(app).await;
    let reply = f
        .call(Request::All {
            requests: (0..3)
                .map(|n| Request::Start {
                    name: "capped".into(),
                    number: Some(n),
                })
                .collect(),
        })
        .await;
    assert!(matches!(reply, Response::Batch { .. }));
    let ps = f
        .wait_until("two started", |ps| {
            ps.iter().filter(|p| p.pid.is_some()).count() == 2
        })
        .await;
    let generations: Vec<Generation> = ps.iter().map(|p| p.generation).collect();
    assert_eq!(
        generations
            .iter()
            .filter(|g| **g == Generation::New)
            .count(),
        2,
        "{generations:?}"
    );
    assert_eq!(
        generations
            .iter()
            .filter(|g| **g == Generation::Queue)
            .count(),
        1,
        "{generations:?}"
    );
    let first = ps
        .iter()
        .find(|p| p.generation == Generation::New)
        .unwrap()
        .id;
    f.call(Request::Kill { id: first }).await;
    f.wait_until("queue released", |ps| {
        ps.iter()
            .filter(|p| p.generation == Generation::New && p.pid.is_some())
            .count()
            == 2
            && ps.iter().all(|p| p.generation != Generation::Queue)
    })
    .await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_startup_marks_and_signals_only_once_ready() {
    let mut f = Fixture::start().await;
    let mut app = f.script_app("slow", "trap 'echo got INT; exit 0' INT\nsleep 0.5\necho '\"ready\"' >&3\nwhile true; do sleep 0.05; done");
    app.ready_on = ReadyOn::Message;
    f.add(app).await;
    let p = f.start_app("slow", 0).await;
    let started = f
        .wait_until("spawned", |ps| {
            ps.iter().any(|q| q.id == p.id && q.pid.is_some())
        })
        .await;
    let pid = started[0].pid.unwrap();
    f.call(Request::Stop { id: p.id }).await;
    assert_eq!(
        f.process(p.id).await.unwrap().generation,
        Generation::Marked
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        alive(pid),
        "a marked process must not be signalled before it is ready"
    );
    assert!(f.logs("slow").await.iter().all(|r| r.kind != LogKind::Stop));
    assert!(wait_gone(pid).await);
    let texts: Vec<String> = f
        .logs_through_exit("slow")
        .await
        .into_iter()
        .map(|r| r.text)
        .collect();
    let marked = texts
        .iter()
        .position(|t| t == "moved to marked generation")
        .unwrap();
    let old = texts
        .iter()
        .position(|t| t == "moved to old generation")
        .unwrap();
    let stop = texts.iter().position(|t| t == "signal=SIGINT").unwrap();
    let got = texts.iter().position(|t| t == "got INT").unwrap();
    assert!(marked < old && old < stop && stop < got, "{texts:?}");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_instances_replace_by_number_and_non_unique_replace_the_oldest() {
    let mut f = Fixture::start().await;
    let body =
        "trap 'exit 0' INT\necho \"n=$FINAL_PM_INSTANCE_NUMBER\"\nwhile true; do sleep 0.05; done";
    let mut unique = f.script_app("uniq", body);
    unique.instances = 3;
    f.add(unique).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(f.start_app("uniq", n).await.id);
    }
    f.wait_rest().await;
    // Ready (`instant`) is not the same as having printed: let the first
    // three lines be out before the replacement prints the fourth.
    f.wait_stdout("uniq", 3).await;
    let again = f.start_app("uniq", 1).await.id;
    f.wait_rest().await;
    let ps = f
        .wait_until("old #1 gone", |ps| ps.iter().all(|p| p.id != ids[1]))
        .await;
    let mut running: Vec<_> = ps
        .iter()
        .filter(|p| p.app_name == "uniq")
        .map(|p| (p.number, p.id))
        .collect();
    running.sort();
    assert_eq!(running, vec![(0, ids[0]), (1, again), (2, ids[2])]);
    let numbers = f.texts_of("uniq", LogKind::Stdout).await;
    // The first three start together, so their lines may interleave.
    let mut first: Vec<&str> = numbers[..3].iter().map(String::as_str).collect();
    first.sort_unstable();
    assert_eq!(first, ["n=0", "n=1", "n=2"]);
    assert_eq!(numbers[3], "n=1");

    let mut plain = f.script_app("plain", body);
    plain.instances = 2;
    plain.unique_instances = false;
    f.add(plain).await;
    let a = f.start_app("plain", 0).await.id;
    f.wait_rest().await;
    let b = f.start_app("plain", 0).await.id;
    f.wait_rest().await;
    let c = f.start_app("plain", 0).await.id;
    f.wait_rest().await;
    let ps = f
        .wait_until("oldest plain gone", |ps| ps.iter().all(|p| p.id != a))
        .await;
    let mut kept: Vec<_> = ps
        .iter()
        .filter(|p| p.app_name == "plain")
        .map(|p| (p.number, p.id))
        .collect();
    kept.sort();
    assert_eq!(kept, vec![(0, c), (1, b)], "renumbered newest-first");
    let no_env = f
        .texts_of("plain", LogKind::Stdout)
        .await
        .iter()
        .all(|t| t == "n=");
    assert!(no_env, "non-unique apps get no FINAL_PM_INSTANCE_NUMBER");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signal_sigterm_is_delivered() {
    let mut f = Fixture::start().await;
    // Ready only once the traps are set, or the stop could come first.
    let mut app = f.script_app(
        "term",
        "trap 'echo got TERM; exit 0' TERM\ntrap '' INT\necho '\"ready\"' >&3\n\
         while true; do sleep 0.05; done",
    );
    app.ready_on = ReadyOn::Message;
    app.stop_signal = StopSignal::Sigterm;
    f.add(app).await;
    let p = f.start_app("term", 0).await;
    f.wait_rest().await;
    f.call(Request::Stop { id: p.id }).await;
    f.wait_until("gone", |ps| ps.is_empty()).await;
    let texts: Vec<String> = f.logs("term").await.into_iter().map(|r| r.text).collect();
    assert!(
        texts.contains(&"signal=SIGTERM".to_owned()) && texts.contains(&"got TERM".to_owned()),
        "{texts:?}"
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_is_paced_by_its_delay_and_the_daemon_stays_responsive() {
    let mut f = Fixture::start().await;
    let mut app = f.script_app("loop", "exit 1");
    app.restart_crashing_delay = 100;
    f.add(app).await;
    let p = f.start_app("loop", 0).await;
    let begin = std::time::Instant::now();
    // The daemon answers promptly throughout (each call would time out in
    // the fixture if it did not).
    for _ in 0..50 {
        let _ = f.processes().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = begin.elapsed().as_millis() as u32;
    let crashes = f.process(p.id).await.map_or(0, |q| q.crashes);
    // One start per 100 ms delay at most, plus the first.
    assert!(
        crashes <= elapsed / 100 + 2,
        "{crashes} crashes in {elapsed} ms with a 100 ms delay"
    );
    assert!(crashes >= 3, "the loop kept restarting: {crashes}");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_torn_down_without_shutdown_kills_its_processes() {
    let mut f = Fixture::start().await;
    let app = f.script_app(
        "orphan",
        "trap '' INT TERM\nwhile true; do sleep 0.05; done",
    );
    f.add(app).await;
    let p = f.start_app("orphan", 0).await;
    f.wait_rest().await;
    let pid = f.process(p.id).await.unwrap().pid.unwrap();
    f.abort().await;
    assert!(
        wait_gone(pid).await,
        "process {pid} outlived its supervisor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_that_keeps_failing_without_delay_leaves_the_daemon_responsive() {
    let mut f = Fixture::start().await;
    // restart-crashing-delay 0 (script_app's default here) and a cwd that
    // does not exist: every spawn fails at once and is retried at once.
    let mut app = f.script_app("nowhere", "exit 0");
    app.cwd = f.path("no-such-dir").to_string_lossy().into_owned();
    f.add(app).await;
    let p = f.start_app("nowhere", 0).await;
    // The daemon keeps answering while it retries, and the retries are real.
    let mut crashes = 0;
    for _ in 0..20 {
        crashes = f.process(p.id).await.map_or(0, |p| p.crashes);
        if crashes >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(crashes >= 3, "crashes: {crashes}");
    let errors = f.logs_of("nowhere", LogKind::Error).await.len();
    assert!(errors >= 3, "an error record per failed spawn: {errors}");
    f.call(Request::Kill { id: p.id }).await;
    f.wait_until("nowhere gone", |ps| ps.iter().all(|q| q.id != p.id))
        .await;
    f.shutdown().await;
}
