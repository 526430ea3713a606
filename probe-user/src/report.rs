//! Per-process records (`interval`, `summary`) and their two renderings: JSON lines with a
//! `{"type": ..., "data": ...}` envelope, and a human table. The JSON shape is documented in
//! docs/output.md; fields are only ever added, never renamed.

use std::io::Write;

use serde::Serialize;

use crate::stats::Latency;

#[derive(Debug, Clone, Serialize)]
pub struct GcStats {
    pub cycles: u64,
    pub cycles_per_second: f64,
}

/// GC stop-the-world pauses (what `MemStats.PauseTotalNs` counts).
#[derive(Debug, Clone, Serialize)]
pub struct StwStats {
    pub count: u64,
    pub total_ns: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p95_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl From<Latency> for StwStats {
    fn from(l: Latency) -> Self {
        StwStats {
            count: l.count,
            total_ns: l.total_ns,
            mean_ns: l.mean_ns,
            p50_ns: l.p50_ns,
            p95_ns: l.p95_ns,
            p99_ns: l.p99_ns,
            max_ns: l.max_ns,
        }
    }
}

/// Stop-the-world pauses for other reasons (ReadMemStats, GOMAXPROCS, profiles, traces).
#[derive(Debug, Clone, Serialize)]
pub struct StwOtherStats {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

/// Time the process's threads waited in the kernel run queue.
#[derive(Debug, Clone, Serialize)]
pub struct RunqStats {
    pub count: u64,
    pub total_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl From<Latency> for RunqStats {
    fn from(l: Latency) -> Self {
        RunqStats { count: l.count, total_ns: l.total_ns, p50_ns: l.p50_ns, p90_ns: l.p90_ns, p99_ns: l.p99_ns, max_ns: l.max_ns }
    }
}

/// A goroutine that waited at least the exemplar threshold.
#[derive(Debug, Clone, Serialize)]
pub struct ExemplarRecord {
    pub goid: u64,
    pub wait_ns: u64,
    /// Part of the wait during which the thread that then ran it sat in the kernel run queue.
    pub cpu_wait_ns: u64,
    /// OS thread that ran it, and on which CPU.
    pub tid: u32,
    pub cpu: u32,
    /// ktime (CLOCK_MONOTONIC ns) when it started running.
    pub time_ns: u64,
}

impl From<&probe_common::Exemplar> for ExemplarRecord {
    fn from(e: &probe_common::Exemplar) -> Self {
        ExemplarRecord { goid: e.goid, wait_ns: e.wait_ns, cpu_wait_ns: e.cpu_wait_ns, tid: e.tid, cpu: e.cpu, time_ns: e.time_ns }
    }
}

/// Where goroutine waits were spent.
#[derive(Debug, Clone, Serialize)]
pub struct SchedSplit {
    /// Share of the goroutine wait time during which the thread that then ran the goroutine
    /// was itself waiting for a CPU in the kernel. Low: the wait is Go scheduler / P
    /// contention. Null when no waits were measured.
    pub cpu_wait_fraction: Option<f64>,
    /// Time the process's cgroup was CPU-throttled in the window (null: no CPU controller).
    pub throttled_ns: Option<u64>,
}

/// Goroutine scheduling latency: time from runnable to running.
#[derive(Debug, Clone, Serialize)]
pub struct GoroutineSchedStats {
    pub count: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub total_ns: u64,
    /// `runtime` (the program's own histogram), `precise` (casgstatus uprobe, duty-cycled),
    /// `both` (numbers from precise, the runtime's view in `runtime`), `off`, or `unavailable`
    /// (see `source_error`).
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_error: Option<String>,
    /// Time in the window during which the precise source was on.
    pub sampled_ns: u64,
    /// Goroutines created while it was on.
    pub goroutines_created: u64,
    pub split: SchedSplit,
    /// The longest waits (at most 10), longest first.
    pub top_exemplars: Vec<ExemplarRecord>,
    /// With `both`: the runtime source's view of the same window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeView>,
}

/// The runtime's own histogram over a window (1-in-8 sampled, runtime bucket resolution).
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeView {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// Data-loss and consistency counters of this process's measurement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeHealth {
    /// Start-the-world seen without its stop (attached mid-pause or state lost).
    pub stw_unpaired: u64,
    /// Where GC pause start and end times come from: `runtime` (the runtime's own clock
    /// values, equal to what it reports) or `probe` (the probes' clock; misses the uprobe trap
    /// latency at the start of each pause).
    pub pause_clock: &'static str,
}

/// One process over one window (an `interval`) or the whole capture (a `summary`).
#[derive(Debug, Clone, Serialize)]
pub struct ProcessRecord {
    pub pid: u32,
    pub comm: String,
    pub exe: String,
    pub go_version: String,
    /// Wall-clock end of the window, Unix nanoseconds.
    pub time_unix_ns: u64,
    pub duration_ns: u64,
    pub gc: GcStats,
    pub stw: StwStats,
    pub stw_other: StwOtherStats,
    pub os_runq: RunqStats,
    pub goroutine_sched: GoroutineSchedStats,
    pub threads: u64,
    /// The process exited during the capture.
    pub exited: bool,
    pub probe: ProbeHealth,
    /// GOMAXPROCS signal for this window (`summary`: the last window's); see docs/signals.md.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<crate::signals::Signal>,
}

/// Something that could not be watched, and why (one per failed target).
#[derive(Debug, Clone, Serialize)]
pub struct AttachFailure {
    pub pid: Option<u32>,
    pub reason: String,
    pub message: String,
}

/// Kernel-side counters that mean data was lost, summed over the whole capture.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeErrors {
    pub counters: std::collections::BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a T,
}

/// Writes one JSON line: `{"type": kind, "data": data}`.
pub fn json_line<T: Serialize>(out: &mut impl Write, kind: &str, data: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &Envelope { kind, data })?;
    out.write_all(b"\n")?;
    out.flush()
}

fn fmt_ns(ns: u64) -> String {
    match ns {
        0 => "0".into(),
        n if n < 10_000 => format!("{n}ns"),
        n if n < 10_000_000 => format!("{:.1}µs", n as f64 / 1e3),
        n if n < 10_000_000_000 => format!("{:.2}ms", n as f64 / 1e6),
        n => format!("{:.2}s", n as f64 / 1e9),
    }
}

/// The human report: one block per process.
pub fn human(out: &mut impl Write, records: &[ProcessRecord], failures: &[AttachFailure], errors: &ProbeErrors) -> std::io::Result<()> {
    for r in records {
        writeln!(
            out,
            "pid {} ({}) {}  {:.1}s{}  threads {}",
            r.pid,
            r.comm,
            r.go_version,
            r.duration_ns as f64 / 1e9,
            if r.exited { " (exited)" } else { "" },
            r.threads
        )?;
        writeln!(out, "  GC cycles          {:>8}   {:.2}/s", r.gc.cycles, r.gc.cycles_per_second)?;
        let row = |out: &mut dyn Write, name: &str, count: u64, cells: [String; 5]| -> std::io::Result<()> {
            let [p50, p9x, p99, max, total] = cells;
            writeln!(out, "  {name:<18} {count:>8} {p50:>10} {p9x:>10} {p99:>10} {max:>10} {total:>10}")
        };
        writeln!(out, "  {:<18} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}", "", "count", "p50", "p95/p90", "p99", "max", "total")?;
        let (s, o, q, g) = (&r.stw, &r.stw_other, &r.os_runq, &r.goroutine_sched);
        row(out, "GC STW pause", s.count, [s.p50_ns, s.p95_ns, s.p99_ns, s.max_ns, s.total_ns].map(fmt_ns))?;
        row(out, "other STW pause", o.count, [String::new(), String::new(), String::new(), fmt_ns(o.max_ns), fmt_ns(o.total_ns)])?;
        row(out, "OS run-queue wait", q.count, [q.p50_ns, q.p90_ns, q.p99_ns, q.max_ns, q.total_ns].map(fmt_ns))?;
        row(out, "goroutine wait", g.count, [g.p50_ns, g.p90_ns, g.p99_ns, g.max_ns, g.total_ns].map(fmt_ns))?;
        writeln!(
            out,
            "  goroutine source {} (sampled {:.1}s), CPU-wait share {}, throttled {}",
            g.source,
            g.sampled_ns as f64 / 1e9,
            g.split.cpu_wait_fraction.map(|f| format!("{:.0}%", f * 100.0)).unwrap_or_else(|| "-".into()),
            g.split.throttled_ns.map(fmt_ns).unwrap_or_else(|| "n/a".into())
        )?;
        for e in g.top_exemplars.iter().take(5) {
            writeln!(out, "    slow goroutine {:>8} waited {:>10} (CPU wait {}) ran on tid {} cpu {}", e.goid, fmt_ns(e.wait_ns), fmt_ns(e.cpu_wait_ns), e.tid, e.cpu)?;
        }
        if let Some(sig) = &r.signal {
            writeln!(
                out,
                "  GOMAXPROCS {} -> {:?} ({:?}, rule {}, confidence {:.2}): {}",
                sig.current.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
                sig.recommended,
                sig.action,
                sig.rule,
                sig.confidence,
                sig.reason
            )?;
        }
        if r.probe.stw_unpaired > 0 {
            writeln!(out, "  note: {} start-the-world events without a matching stop", r.probe.stw_unpaired)?;
        }
        writeln!(out)?;
    }
    for f in failures {
        writeln!(out, "not recorded: {}", f.message)?;
    }
    let lost: Vec<String> = errors.counters.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k}={v}")).collect();
    if !lost.is_empty() {
        writeln!(out, "probe data loss: {}", lost.join(" "))?;
    }
    Ok(())
}

/// Cost of each eBPF program over the capture (the `probe_programs` record).
#[derive(Debug, Clone, Serialize)]
pub struct ProgramCosts {
    /// `kernel.bpf_stats_enabled` was on, so the numbers below are meaningful.
    pub stats_enabled: bool,
    pub programs: Vec<ProgramCost>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramCost {
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
    pub ns_per_run: u64,
}

pub fn program_costs(stats: &[crate::probe::ProgramStats]) -> ProgramCosts {
    let enabled = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1");
    ProgramCosts {
        stats_enabled: enabled,
        programs: stats
            .iter()
            .map(|p| ProgramCost {
                name: p.name.clone(),
                run_count: p.run_count,
                run_time_ns: p.run_time_ns,
                ns_per_run: p.run_time_ns.checked_div(p.run_count).unwrap_or(0),
            })
            .collect(),
    }
}
