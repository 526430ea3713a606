//! `golat agent`: watches every Go process on the machine (found by a /proc scan at start, by
//! exec events, and by periodic rescans), keeps per-process summaries, and serves them as
//! Prometheus metrics and JSON (see docs/deploy.md and docs/output.md).

pub mod config;
mod http;
mod metrics;
pub mod select;

use std::{
    collections::{BTreeMap, HashMap},
    io::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use probe_common::{Hist, HistKind};
use tokio::{io::unix::AsyncFd, time::MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::{
    probe::{self, Probe, ProgramStats},
    report::{self, ProcessRecord},
    stats::delta,
    system, target,
    watch::{GoroutineSource, Watched, Window, build_record, keep_top, open_runtime_hist},
};
use config::Config;

/// Labels of one watched process.
#[derive(Debug, Clone)]
pub struct Labels {
    pub pid: u32,
    pub comm: String,
    pub exe: String,
    pub go_version: String,
    pub cgroup: String,
    pub container_id: Option<String>,
}

/// Cumulative numbers of one process since the agent attached, for /metrics.
#[derive(Debug, Clone)]
pub struct ProcMetrics {
    pub stw_gc: Hist,
    pub stw_other: Hist,
    pub runq: Hist,
    /// Goroutine waits and which source they came from (None when unavailable).
    pub goroutine: Option<(Hist, &'static str)>,
    pub gc_cycles: u64,
    pub threads: u64,
}

#[derive(Debug, Clone)]
pub struct ProcEntry {
    pub labels: Labels,
    pub summary: ProcessRecord,
    pub metrics: ProcMetrics,
}

/// The agent's own health: what it watches, what it could not, and what it costs.
#[derive(Debug, Clone, Default)]
pub struct SelfStats {
    pub discovered_total: u64,
    pub attached_total: u64,
    /// From exec to watching, for processes found through exec events.
    pub attach_latency_max_ns: u64,
    pub attach_latency_sum_ns: u64,
    pub attach_latency_count: u64,
    pub exec_events_total: u64,
    pub attach_failures: BTreeMap<String, u64>,
    pub skipped: BTreeMap<String, u64>,
    pub probe_errors: Vec<(&'static str, u64)>,
    pub programs: Vec<ProgramStats>,
    pub map_entries: Vec<(&'static str, usize)>,
    pub binaries: usize,
    pub uprobe_links: usize,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

#[derive(Debug, Default)]
pub struct Shared {
    pub procs: BTreeMap<u32, ProcEntry>,
    pub me: SelfStats,
}

/// How long a binary stays attached after its last process exits (see
/// `Probe::set_binary_linger`).
const BINARY_LINGER: Duration = Duration::from_secs(10);

struct Agent {
    cfg: Config,
    probe: Probe,
    watched: HashMap<u32, (Watched, Labels)>,
    /// Per binary (device, inode): its Go version, or None when it is not a Go binary we can
    /// watch, so each binary is read once.
    binaries: HashMap<(u64, u64), Option<String>>,
    stats: SelfStats,
    stream: Option<Box<dyn std::io::Write + Send>>,
    sampled: Duration,
}

fn self_usage() -> (u64, f64) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / tck)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

impl Agent {
    fn skip(&mut self, reason: &str) {
        *self.stats.skipped.entry(reason.to_owned()).or_default() += 1;
    }

    /// Looks at one process and watches it if it is a Go program the filters allow. True
    /// when it started watching it.
    fn consider(&mut self, pid: u32) -> bool {
        if pid == std::process::id() || self.watched.contains_key(&pid) {
            return false;
        }
        let Ok(proc) = target::Process::open(pid) else { return false };
        let go_version = match self.binaries.get(&proc.binary_key) {
            Some(v) => v.clone(),
            None => {
                let v = gobin::GoBinary::open(&proc.exe_link).ok().map(|b| b.build_info().go_version_raw.clone());
                self.binaries.insert(proc.binary_key, v.clone());
                v
            }
        };
        let Some(go_version) = go_version else { return false };
        self.stats.discovered_total += 1;
        let (cgroup, container_id) = select::cgroup_of(pid);
        if let Some(reason) = self.cfg.filters.reject(&proc.comm, &proc.exe_path, &cgroup).or_else(|| self.cfg.filters.reject_go_version(&go_version)) {
            self.skip(reason);
            return false;
        }
        if self.watched.len() >= self.cfg.max_processes {
            log::warn!("pid {pid} ({}): not watched, limit of {} processes reached", proc.comm, self.cfg.max_processes);
            self.skip("limit");
            return false;
        }
        let path = proc.exe_link.clone();
        match self.probe.watch(&proc, &path) {
            Ok(info) => {
                let Ok(first) = self.probe.snapshot(pid) else { return false };
                let labels = Labels { pid, comm: proc.comm.clone(), exe: proc.exe_path.clone(), go_version, cgroup, container_id };
                let mut w = Watched::new(proc, info, first);
                if self.cfg.goroutine_source.runtime() {
                    open_runtime_hist(&mut w);
                }
                log::info!("watching pid {pid} ({}, {})", labels.comm, labels.go_version);
                self.stats.attached_total += 1;
                self.watched.insert(pid, (w, labels));
                true
            }
            Err(e) => {
                log::warn!("{e}");
                *self.stats.attach_failures.entry(e.reason().to_owned()).or_default() += 1;
                false
            }
        }
    }

    fn scan(&mut self) {
        let Ok(dir) = std::fs::read_dir("/proc") else { return };
        let pids: Vec<u32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
        for pid in pids {
            self.consider(pid);
        }
        // Reading binaries allocates whole files; hand the freed memory back to the system so
        // the agent's RSS reflects what it keeps.
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
    }

    /// Reads every watched process, writes interval records, drops exited processes, and
    /// publishes the new state.
    fn tick(&mut self, window: Duration, sampled: Duration, shared: &Mutex<Shared>) {
        self.probe.flush_logs();
        self.sampled += sampled;
        for e in self.probe.drain_exemplars() {
            if let Some((w, _)) = self.watched.get_mut(&e.tgid) {
                keep_top(&mut w.top, e, 10);
                keep_top(&mut w.window_top, e, 10);
            }
        }
        let source = self.cfg.goroutine_source;
        let mut gone = Vec::new();
        let mut entries = BTreeMap::new();
        for (pid, (w, labels)) in self.watched.iter_mut() {
            let exited = !target::exists(*pid);
            if let Some(t) = target::threads(*pid).filter(|_| !exited) {
                w.threads = t;
            }
            let (rt_prev, rt_now) = w.read_runtime(source.runtime() && !exited);
            let throttled = if exited { w.throttled_last } else { crate::cgroup::throttled_ns(*pid) };
            if let Ok(s) = self.probe.snapshot(*pid) {
                {
                    let win = Window {
                        from: &w.last,
                        to: &s,
                        duration: window,
                        sampled,
                        source,
                        exemplars: &w.window_top,
                        throttled_ns: throttled.zip(w.throttled_last).map(|(a, b)| a.saturating_sub(b)),
                        rt: rt_prev.or(w.rt_first).zip(rt_now),
                    };
                    let mut rec = build_record(w, &win);
                    if !exited {
                        rec.signal = Some(w.window_signal(&rec, window, self.cfg.policy));
                    }
                    if let Some(out) = self.stream.as_mut() {
                        if let Err(e) = report::json_line(out, "interval", &rec) {
                            log::warn!("stream: {e}");
                        }
                        if let Some(sig) = &rec.signal {
                            let line = serde_json::json!({ "pid": pid, "comm": labels.comm, "signal": sig });
                            if let Err(e) = report::json_line(out, "signal", &line) {
                                log::warn!("stream: {e}");
                            }
                        }
                    }
                }
                w.last = s;
            }
            w.window_top.clear();
            w.throttled_last = throttled;
            if exited {
                w.exited = true;
                w.ended = Some(Instant::now());
                gone.push(*pid);
                continue;
            }
            let h = |k: HistKind| {
                let z = Hist::ZERO;
                delta(w.last.hists.get(&(k as u32)).unwrap_or(&z), w.first.hists.get(&(k as u32)).unwrap_or(&z))
            };
            let goroutine = match source {
                GoroutineSource::Runtime => w.rt_first.zip(w.rt_last).map(|(a, b)| (delta(&b, &a), "runtime")),
                GoroutineSource::Off => None,
                _ => Some((h(HistKind::GoroutineSched), "precise")),
            };
            let metrics = ProcMetrics {
                stw_gc: h(HistKind::StwGc),
                stw_other: h(HistKind::StwOther),
                runq: h(HistKind::OsRunq),
                goroutine,
                gc_cycles: w.last.counters.gc_cycles.saturating_sub(w.first.counters.gc_cycles),
                threads: w.threads,
            };
            entries.insert(*pid, ProcEntry { labels: labels.clone(), summary: w.summary(source, self.sampled), metrics });
        }
        self.probe.detach_idle_binaries();
        for pid in gone {
            self.probe.unwatch(pid);
            if let Some((_, l)) = self.watched.remove(&pid) {
                log::info!("pid {pid} ({}) exited", l.comm);
            }
        }
        if let Some(out) = self.stream.as_mut() {
            let _ = out.flush();
        }
        let (rss, cpu) = self_usage();
        self.stats.rss_bytes = rss;
        self.stats.cpu_seconds = cpu;
        self.stats.probe_errors = self.probe.errors().unwrap_or_default();
        self.stats.programs = self.probe.program_stats();
        self.stats.map_entries = self.probe.map_entries();
        (self.stats.binaries, self.stats.uprobe_links) = self.probe.attachments();
        let mut sh = shared.lock().expect("agent state lock");
        sh.procs = entries;
        sh.me = self.stats.clone();
    }
}

pub async fn run(cfg: Config, cancel: CancellationToken) -> anyhow::Result<i32> {
    system::check_privileges()?;
    if let Some(w) = system::ensure_tracefs() {
        log::warn!("{w}");
    }
    let task = system::task_offsets()?;
    // Bind first: a port in use is a configuration error worth one clear line before any
    // probe is loaded.
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let threshold = cfg.exemplar_threshold.as_nanos().min(u128::from(u64::MAX)) as u64;
    let mut probe = Probe::load(task, threshold).context("cannot load the eBPF programs")?;
    let exec_rb = probe.take_exec_events().context("exec ring buffer")?;
    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as long as
    // the RingBuf lives, and the AsyncFd owns the RingBuf.
    let mut exec_fd = unsafe { AsyncFd::register_with_interest(exec_rb, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("polling the exec ring buffer: {e}"))?;
    let stream: Option<Box<dyn std::io::Write + Send>> = match cfg.stream.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(
            std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open stream file {path}"))?,
        )),
    };
    let shared = Arc::new(Mutex::new(Shared::default()));
    let server = http::serve(listener, shared.clone(), cancel.clone());
    let server = tokio::spawn(server);
    eprintln!("golat: agent listening on http://{}", cfg.listen);

    let precise = cfg.goroutine_source.precise();
    let far = Duration::from_secs(u64::MAX / 4);
    let mut next_toggle = Instant::now() + far;
    let mut on_since = None;
    if precise {
        probe.set_precise(true);
        on_since = Some(Instant::now());
        next_toggle = Instant::now() + if cfg.precise_duty.always() { far } else { cfg.precise_duty.on };
    }
    probe.set_binary_linger(BINARY_LINGER);
    let mut agent = Agent { cfg: cfg.clone(), probe, watched: HashMap::new(), binaries: HashMap::new(), stats: SelfStats::default(), stream, sampled: Duration::ZERO };
    agent.scan();
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut rescan = tokio::time::interval(cfg.rescan_interval);
    rescan.set_missed_tick_behavior(MissedTickBehavior::Skip);
    rescan.tick().await;
    let mut window_start = Instant::now();
    let mut sampled_window = Duration::ZERO;
    loop {
        let toggle = tokio::time::sleep_until(next_toggle.into());
        tokio::select! {
            _ = cancel.cancelled() => break,
            guard = exec_fd.readable_mut() => {
                let Ok(mut guard) = guard else { break };
                let events = probe::drain_execs(guard.get_inner_mut());
                guard.clear_ready();
                agent.stats.exec_events_total += events.len() as u64;
                for ev in events {
                    // A short-lived process may be gone already: nothing to do then.
                    if agent.consider(ev.tgid) {
                        let ns = probe::monotonic_ns().saturating_sub(ev.time_ns);
                        agent.stats.attach_latency_max_ns = agent.stats.attach_latency_max_ns.max(ns);
                        agent.stats.attach_latency_sum_ns += ns;
                        agent.stats.attach_latency_count += 1;
                    }
                }
            }
            _ = rescan.tick() => agent.scan(),
            _ = toggle, if precise => {
                let on = !agent.probe.precise_on();
                if !on {
                    if let Some(t) = on_since.take() { sampled_window += Instant::now().duration_since(t); }
                }
                for p in agent.probe.set_precise(on) { log::warn!("precise goroutine source: {p}"); }
                if on { on_since = Some(Instant::now()); }
                next_toggle = Instant::now() + if on { cfg.precise_duty.on } else { cfg.precise_duty.period - cfg.precise_duty.on };
            }
            _ = ticker.tick() => {
                if let Some(t) = on_since.as_mut() { sampled_window += t.elapsed(); *t = Instant::now(); }
                let window = window_start.elapsed();
                window_start = Instant::now();
                agent.tick(window, std::mem::take(&mut sampled_window), &shared);
            }
        }
    }
    eprintln!("golat: agent stopping");
    agent.probe.set_precise(false);
    agent.tick(window_start.elapsed(), sampled_window, &shared);
    let pids: Vec<u32> = agent.watched.keys().copied().collect();
    agent.probe.set_binary_linger(Duration::ZERO);
    for pid in pids {
        agent.probe.unwatch(pid);
    }
    agent.probe.detach_idle_binaries();
    cancel.cancel();
    let _ = server.await;
    Ok(0)
}
