//! The node agent on the real kernel: discovery of Go processes only, a valid Prometheus
//! exposition, series removed after exit, churn without leaks, and bad input.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    go_build::Variant,
    harness::{build_workload, go_toolchains, golat, golat_bin, in_ci, kernel_tests_can_run},
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The value of the first sample line starting with `prefix`.
fn metric(body: &str, prefix: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

struct Agent {
    child: Child,
    port: u16,
}

impl Agent {
    fn start(extra: &[&str]) -> Agent {
        let port = free_port();
        let child = golat()
            .args(["agent", "--interval", "1s", "--rescan-interval", "5s", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start agent");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "agent did not start listening");
            std::thread::sleep(Duration::from_millis(100));
        }
        Agent { child, port }
    }

    fn metrics(&self) -> String {
        let (status, body) = get(self.port, "/metrics");
        assert_eq!(status, 200);
        body
    }

    /// Waits until `f(metrics)` holds, up to `secs`.
    fn wait_for(&self, secs: u64, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.metrics();
            if f(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{m}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "agent exit status {status}");
                return;
            }
            assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn promtool_check(body: &str) {
    let promtool = which_promtool();
    let Some(promtool) = promtool else {
        assert!(!in_ci(), "promtool missing in CI (cargo xtask setup installs Debian's prometheus)");
        eprintln!("SKIPPED promtool check: promtool not installed");
        return;
    };
    let mut child = Command::new(promtool).args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("promtool");
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(out.status.success(), "promtool check metrics: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

fn which_promtool() -> Option<std::path::PathBuf> {
    ["/usr/bin/promtool", "/usr/local/bin/promtool"].iter().map(std::path::PathBuf::from).find(|p| p.exists())
}

#[test]
fn agent_watches_go_processes_only_and_drops_exited_ones() {
    if !kernel_tests_can_run() {
        return;
    }
    let agent = Agent::start(&[]);
    let gos = go_toolchains();
    let mut workloads: Vec<Child> = gos
        .iter()
        .rev()
        .take(3)
        .map(|go| {
            let bin = build_workload("runq", go, Variant::Default);
            Command::new(bin).args(["-duration", "30s"]).stdout(Stdio::null()).spawn().expect("workload")
        })
        .collect();
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
    let pids: Vec<u32> = workloads.iter().map(Child::id).collect();
    let m = agent.wait_for(15, "three Go processes", |m| pids.iter().all(|p| m.contains(&format!("pid=\"{p}\""))));
    assert!(!m.contains(&format!("pid=\"{}\"", sleeper.id())), "the non-Go process has no series");
    assert!(m.contains("golat_goroutine_sched_latency_seconds_bucket"), "{m}");
    assert!(m.contains("golat_os_runqueue_latency_seconds_count"), "{m}");
    assert_eq!(metric(&m, "golat_processes_watched "), Some(pids.len() as f64));
    promtool_check(&m);
    println!("agent: /metrics has {} lines for {} Go processes", m.lines().count(), pids.len());

    let (s, body) = get(agent.port, "/v1/processes");
    assert_eq!(s, 200);
    let list: serde_json::Value = serde_json::from_str(&body).expect("JSON list");
    assert_eq!(list.as_array().map(Vec::len), Some(pids.len()), "{body}");
    let (s, body) = get(agent.port, &format!("/v1/processes/{}", pids[0]));
    assert_eq!(s, 200);
    let one: serde_json::Value = serde_json::from_str(&body).expect("JSON object");
    assert_eq!(one["pid"].as_u64(), Some(u64::from(pids[0])));
    assert!(one["goroutine_sched"]["source"].is_string());
    assert_eq!(get(agent.port, "/v1/processes/not-a-number").0, 400);
    assert_eq!(get(agent.port, &format!("/v1/processes/{}", sleeper.id())).0, 404);
    assert_eq!(get(agent.port, "/healthz"), (200, "ok\n".to_owned()));

    // A killed workload's series are gone within two intervals.
    let victim = workloads.remove(0);
    let vpid = victim.id();
    let mut victim = victim;
    victim.kill().expect("kill");
    victim.wait().expect("reap");
    let t0 = Instant::now();
    agent.wait_for(3, "series of the killed process to go", |m| !m.contains(&format!("pid=\"{vpid}\"")));
    println!("agent: series of killed pid {vpid} gone after {:?}", t0.elapsed());
    for mut w in workloads {
        let _ = w.kill();
        let _ = w.wait();
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    agent.stop();
}

#[test]
fn agent_survives_churn_of_200_go_processes_without_leaks() {
    if !kernel_tests_can_run() {
        return;
    }
    let agent = Agent::start(&[]);
    let go = go_toolchains().pop().expect("go");
    let bin = build_workload("runq", &go, Variant::Default);
    let before = agent.wait_for(5, "the first interval", |m| metric(m, "golat_agent_resident_memory_bytes").is_some_and(|v| v > 0.0));
    let rss0 = metric(&before, "golat_agent_resident_memory_bytes").unwrap_or(0.0);
    let attached0 = metric(&before, "golat_processes_attached_total").unwrap_or(0.0);
    // 200 short-lived processes, four at a time, each living ~150 ms.
    let t0 = Instant::now();
    for _ in 0..50 {
        let batch: Vec<Child> = (0..4).map(|_| Command::new(&bin).args(["-duration", "150ms"]).stdout(Stdio::null()).spawn().expect("spawn")).collect();
        for mut c in batch {
            c.wait().expect("wait");
        }
    }
    let churn = t0.elapsed();
    // Binaries stay attached 10 s after their last process (so restarts are cheap); then
    // everything must be released.
    let m = agent.wait_for(20, "all churned processes and their uprobes gone", |m| {
        metric(m, "golat_processes_watched ") == Some(0.0) && metric(m, "golat_uprobe_links ") == Some(0.0)
    });
    let attached = metric(&m, "golat_processes_attached_total").unwrap_or(0.0) - attached0;
    let rss1 = metric(&m, "golat_agent_resident_memory_bytes").unwrap_or(0.0);
    println!(
        "agent churn: 200 processes in {churn:?}, attached {attached}, RSS {:.1} MB -> {:.1} MB, exec-to-watch latency mean {:.1} ms max {:.1} ms",
        rss0 / 1e6,
        rss1 / 1e6,
        metric(&m, "golat_attach_latency_mean_seconds").unwrap_or(-1.0) * 1e3,
        metric(&m, "golat_attach_latency_max_seconds").unwrap_or(-1.0) * 1e3,
    );
    assert!(metric(&m, "golat_attach_latency_max_seconds").unwrap_or(1.0) < 0.2, "attached within 200 ms of exec");
    assert!(attached >= 200.0, "every churned Go process was watched: {attached}");
    for line in m.lines().filter(|l| l.starts_with("golat_bpf_map_entries{")) {
        assert!(line.ends_with(" 0"), "leaked map entries: {line}");
    }
    assert_eq!(metric(&m, "golat_uprobe_links "), Some(0.0), "leaked uprobe links");
    assert_eq!(metric(&m, "golat_attached_binaries "), Some(0.0));
    // Bound: the churn may grow the heap once, not per process.
    assert!(rss1 - rss0 < 16e6, "RSS grew {:.1} MB", (rss1 - rss0) / 1e6);
    agent.stop();
}

#[test]
fn agent_bad_input_is_one_clear_line() {
    if !kernel_tests_can_run() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("golat-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "interval = \"1s\"\nlisten_port = 1\n").expect("write");
    let out = golat().args(["agent", "--config"]).arg(&cfg).output().expect("agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_port"), "names the key: {err}");
    std::fs::write(&cfg, "interval = \"soon\"\n").expect("write");
    let out = golat().args(["agent", "--config"]).arg(&cfg).output().expect("agent");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid interval"));
    let _ = std::fs::remove_dir_all(&dir);

    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let out = golat().args(["agent", "--listen", &format!("127.0.0.1:{port}")]).output().expect("agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on") && err.trim().lines().count() == 1, "{err}");

    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(golat_bin())
        .args(["agent", "--listen", "127.0.0.1:0"])
        .output()
        .expect("setpriv");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("golat needs root"));
}
