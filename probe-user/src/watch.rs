//! One watched process: its kernel and runtime-source snapshots, exemplars and throttling,
//! and how a window of them becomes an `interval` or `summary` record. Shared by `record`
//! and `agent`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use probe_common::{Hist, HistKind};

use crate::{
    probe::{BinaryInfo, ProcSnapshot},
    report::{
        ExemplarRecord, GcStats, GoroutineSchedStats, ProbeHealth, ProcessRecord, RuntimeView, SchedSplit, StwOtherStats,
    },
    runtime_source::RuntimeHistogram,
    stats::{Latency, delta},
    target,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GoroutineSource {
    Runtime,
    Precise,
    Both,
    Off,
    /// Calibration for benchmarks: an empty program on the precise source's probe sites.
    #[value(hide = true)]
    EmptyProbe,
}

impl GoroutineSource {
    pub fn precise(self) -> bool {
        matches!(self, GoroutineSource::Precise | GoroutineSource::Both | GoroutineSource::EmptyProbe)
    }

    pub fn runtime(self) -> bool {
        matches!(self, GoroutineSource::Runtime | GoroutineSource::Both)
    }

    pub fn name(self) -> &'static str {
        match self {
            GoroutineSource::Runtime => "runtime",
            GoroutineSource::Precise => "precise",
            GoroutineSource::Both => "both",
            GoroutineSource::Off => "off",
            GoroutineSource::EmptyProbe => "empty_probe",
        }
    }
}

/// One watched process and its cumulative numbers so far.
pub struct Watched {
    pub proc: target::Process,
    /// GOMAXPROCS signals: the policy's memory, the runtime's GOMAXPROCS reader, the process's
    /// CPU time at the last window, and the last signal.
    pub signal_state: crate::signals::policy::State,
    pub gomaxprocs: Option<crate::signals::inputs::GomaxprocsReader>,
    pub cpu_time_last: Option<u64>,
    pub last_signal: Option<crate::signals::Signal>,
    /// Longest exemplars of the whole capture, and those of the current window.
    pub top: Vec<probe_common::Exemplar>,
    pub window_top: Vec<probe_common::Exemplar>,
    pub throttled_first: Option<u64>,
    pub throttled_last: Option<u64>,
    /// Runtime source: the reader (opened once the process runs its Go binary), the
    /// histogram at the start of the capture and at the last read, or why it is unavailable.
    pub runtime_hist: Option<RuntimeHistogram>,
    pub rt_first: Option<Hist>,
    pub rt_last: Option<Hist>,
    pub rt_error: Option<String>,
    pub started_by_us: bool,
    pub info: BinaryInfo,
    pub started: Instant,
    pub ended: Option<Instant>,
    pub first: ProcSnapshot,
    pub last: ProcSnapshot,
    pub threads: u64,
    pub exited: bool,
}

pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Opens the runtime-source reader once the process runs the Go binary (a command started
/// by golat is still the shell until it execs). For a process golat started, the capture
/// covers its whole life, so the baseline is an empty histogram.
pub fn open_runtime_hist(w: &mut Watched) {
    let pid = w.proc.pid;
    let exe = target::proc_dir(pid).join("exe");
    if target::binary_key(&exe).ok() != Some(w.proc.binary_key) {
        return;
    }
    let bin = match gobin::GoBinary::open(&exe) {
        Ok(b) => b,
        Err(e) => {
            w.rt_error = Some(e.to_string());
            return;
        }
    };
    if w.gomaxprocs.is_none() {
        match crate::signals::inputs::GomaxprocsReader::open(pid, &bin, w.proc.binary_key.1) {
            Ok(r) => w.gomaxprocs = Some(r),
            Err(e) => log::debug!("pid {pid}: GOMAXPROCS unknown: {e}"),
        }
    }
    let result = RuntimeHistogram::open(pid, &bin, w.proc.binary_key.1);
    match result {
        Ok(r) => {
            if w.started_by_us {
                w.rt_first = Some(Hist::ZERO);
            }
            w.runtime_hist = Some(r);
            w.rt_error = None;
        }
        Err(e) => {
            if w.rt_error.is_none() {
                eprintln!("golat: pid {pid}: runtime goroutine source unavailable: {e}");
            }
            w.rt_error = Some(e);
        }
    }
}

/// Keeps the `n` longest waits, longest first.
pub fn keep_top(v: &mut Vec<probe_common::Exemplar>, e: probe_common::Exemplar, n: usize) {
    v.push(e);
    v.sort_by(|a, b| b.wait_ns.cmp(&a.wait_ns));
    v.truncate(n);
}

pub struct Window<'a> {
    pub from: &'a ProcSnapshot,
    pub to: &'a ProcSnapshot,
    pub duration: Duration,
    pub sampled: Duration,
    pub source: GoroutineSource,
    pub exemplars: &'a [probe_common::Exemplar],
    pub throttled_ns: Option<u64>,
    pub rt: Option<(Hist, Hist)>,
}

fn runtime_view(from: &Hist, to: &Hist) -> RuntimeView {
    let l = Latency::from_hist(&delta(to, from));
    RuntimeView { count: l.count, p50_ns: l.p50_ns, p90_ns: l.p90_ns, p99_ns: l.p99_ns, max_ns: l.max_ns }
}

pub fn build_record(w: &Watched, win: &Window) -> ProcessRecord {
    let (from, to, window) = (win.from, win.to, win.duration);
    let hist = |s: &ProcSnapshot, k: HistKind| s.hists.get(&(k as u32)).copied().unwrap_or(Hist::ZERO);
    let d = |k| delta(&hist(to, k), &hist(from, k));
    let stw = Latency::from_hist(&d(HistKind::StwGc));
    let other = d(HistKind::StwOther);
    let runq = Latency::from_hist(&d(HistKind::OsRunq));
    let rt = win.rt.as_ref().map(|(a, b)| runtime_view(a, b));
    let use_runtime = win.source == GoroutineSource::Runtime;
    let gs = match win.rt.as_ref() {
        Some((a, b)) if use_runtime => Latency::from_hist(&delta(b, a)),
        _ if use_runtime => Latency::default(),
        _ => Latency::from_hist(&d(HistKind::GoroutineSched)),
    };
    let gwait = to.counters.goroutine_wait_ns.saturating_sub(from.counters.goroutine_wait_ns);
    let gcpu = to.counters.goroutine_cpu_wait_ns.saturating_sub(from.counters.goroutine_cpu_wait_ns);
    let goroutine_sched = GoroutineSchedStats {
        count: gs.count,
        mean_ns: gs.mean_ns,
        p50_ns: gs.p50_ns,
        p90_ns: gs.p90_ns,
        p99_ns: gs.p99_ns,
        max_ns: gs.max_ns,
        total_ns: gs.total_ns,
        source: if use_runtime && win.rt.is_none() { "unavailable" } else { win.source.name() },
        source_error: w.rt_error.clone().filter(|_| win.source.runtime() && win.rt.is_none()),
        sampled_ns: if use_runtime { window.as_nanos() as u64 } else { win.sampled.as_nanos() as u64 },
        goroutines_created: to.counters.goroutines_created.saturating_sub(from.counters.goroutines_created),
        split: SchedSplit { cpu_wait_fraction: (gwait > 0).then(|| gcpu as f64 / gwait as f64), throttled_ns: win.throttled_ns },
        top_exemplars: win.exemplars.iter().map(ExemplarRecord::from).collect(),
        runtime: rt.filter(|_| win.source == GoroutineSource::Both),
    };
    let cycles = to.counters.gc_cycles.saturating_sub(from.counters.gc_cycles);
    let secs = window.as_secs_f64().max(1e-9);
    ProcessRecord {
        pid: w.proc.pid,
        comm: w.proc.comm.clone(),
        exe: w.proc.exe_path.clone(),
        go_version: w.info.go_version.clone(),
        time_unix_ns: unix_ns(),
        duration_ns: window.as_nanos() as u64,
        gc: GcStats { cycles, cycles_per_second: cycles as f64 / secs },
        stw: stw.into(),
        stw_other: StwOtherStats { count: other.count, total_ns: other.sum_ns, max_ns: other.max_ns },
        os_runq: runq.into(),
        goroutine_sched,
        threads: w.threads,
        exited: w.exited,
        probe: ProbeHealth {
            stw_unpaired: to.counters.stw_unpaired.saturating_sub(from.counters.stw_unpaired),
            pause_clock: if w.info.exact_pause_clock { "runtime" } else { "probe" },
        },
        signal: w.last_signal.clone(),
    }
}


impl Watched {
    pub fn new(proc: target::Process, info: BinaryInfo, first: ProcSnapshot) -> Watched {
        let throttled = crate::cgroup::throttled_ns(proc.pid);
        Watched {
            signal_state: Default::default(),
            gomaxprocs: None,
            cpu_time_last: crate::signals::inputs::cpu_time_ns(proc.pid),
            last_signal: None,
            runtime_hist: None,
            rt_first: None,
            rt_last: None,
            rt_error: None,
            started_by_us: false,
            top: Vec::new(),
            window_top: Vec::new(),
            throttled_first: throttled,
            throttled_last: throttled,
            threads: target::threads(proc.pid).unwrap_or(0),
            proc,
            info,
            started: Instant::now(),
            ended: None,
            last: first.clone(),
            first,
            exited: false,
        }
    }

    /// The record of the whole capture so far (a `summary`).
    pub fn summary(&self, source: GoroutineSource, sampled: Duration) -> ProcessRecord {
        let dur = self.ended.unwrap_or_else(Instant::now).duration_since(self.started);
        let win = Window {
            from: &self.first,
            to: &self.last,
            duration: dur,
            sampled: sampled.min(dur),
            source,
            exemplars: &self.top,
            throttled_ns: self.throttled_last.zip(self.throttled_first).map(|(a, b)| a.saturating_sub(b)),
            rt: self.rt_first.zip(self.rt_last),
        };
        build_record(self, &win)
    }
}

impl Watched {
    /// The GOMAXPROCS signal for the window `rec` describes; also kept as `last_signal`.
    pub fn window_signal(&mut self, rec: &ProcessRecord, window: Duration, policy: crate::signals::policy::Policy) -> crate::signals::Signal {
        use crate::signals::{WindowInputs, inputs};
        let pid = self.proc.pid;
        let cpu_now = inputs::cpu_time_ns(pid);
        let usage = match (cpu_now, self.cpu_time_last) {
            (Some(a), Some(b)) => a.saturating_sub(b) as f64 / window.as_nanos().max(1) as f64,
            _ => 0.0,
        };
        if cpu_now.is_some() {
            self.cpu_time_last = cpu_now;
        }
        let g = &rec.goroutine_sched;
        let has = |n: u64| (n > 0).then_some(());
        let i = WindowInputs {
            gomaxprocs: self.gomaxprocs.as_ref().and_then(|r| r.read().ok()),
            go_minor: self.info.go_minor,
            cpus_allowed: inputs::cpus_allowed(pid).unwrap_or_else(inputs::cpus_online),
            cpus_online: inputs::cpus_online(),
            quota_cpus: inputs::quota_cpus(pid),
            throttled_fraction: g.split.throttled_ns.map(|t| t as f64 / window.as_nanos().max(1) as f64),
            cpu_usage_cores: usage,
            goroutine_p99_ns: has(g.count).map(|_| g.p99_ns),
            cpu_wait_fraction: g.split.cpu_wait_fraction,
            os_runq_p99_ns: has(rec.os_runq.count).map(|_| rec.os_runq.p99_ns),
            stw_p95_ns: has(rec.stw.count).map(|_| rec.stw.p95_ns),
            gc_cycles_per_second: rec.gc.cycles_per_second,
        };
        let sig = self.signal_state.update(policy, &crate::signals::policy::Thresholds::default(), &i);
        self.last_signal = Some(sig.clone());
        sig
    }
}

impl Watched {
    /// Runtime source: reads the runtime's histogram now (opening the reader on first use),
    /// keeps the first and last reads, and returns (previous read, this read).
    pub fn read_runtime(&mut self, enabled: bool) -> (Option<Hist>, Option<Hist>) {
        let now = if enabled {
            if self.runtime_hist.is_none() {
                open_runtime_hist(self);
            }
            let pid = self.proc.pid;
            self.runtime_hist.as_ref().and_then(|r| r.read().inspect_err(|e| log::debug!("pid {pid}: {e}")).ok())
        } else {
            None
        };
        if self.rt_first.is_none() {
            self.rt_first = now;
        }
        let prev = self.rt_last;
        if now.is_some() {
            self.rt_last = now;
        }
        (prev, now)
    }
}
