//! Prometheus metrics (prometheus-client, OpenMetrics text), encoded at scrape time from the
//! agent's shared state. Names carry base units (`_seconds`, `_bytes`).

use std::sync::{Arc, Mutex};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use probe_common::{Hist, bucket_lower_bound, bucket_upper_bound};

use super::{Labels, Shared};

/// Histogram bucket upper bounds in seconds (Prometheus `le`), 1 µs to 10 s.
const BOUNDS: [f64; 22] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Cumulative `le` buckets from a golat histogram. A golat bucket counts under the first
/// bound at or above its midpoint (golat buckets are at most 6.25% wide).
fn buckets(h: &Hist) -> (f64, u64, Vec<(f64, u64)>) {
    let mut per = [0u64; BOUNDS.len() + 1];
    for (i, &n) in h.buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let lo = bucket_lower_bound(i) as f64;
        let hi = bucket_upper_bound(i).min(1 << 50) as f64;
        let mid = (lo + hi) / 2.0 / 1e9;
        let slot = BOUNDS.iter().position(|b| mid <= *b).unwrap_or(BOUNDS.len());
        per[slot] += n;
    }
    let mut acc = 0;
    let mut out: Vec<(f64, u64)> = BOUNDS
        .iter()
        .enumerate()
        .map(|(i, b)| {
            acc += per[i];
            (*b, acc)
        })
        .collect();
    out.push((f64::INFINITY, h.count));
    (h.sum_ns as f64 / 1e9, h.count, out)
}

fn labels(l: &Labels) -> Vec<(String, String)> {
    let mut v = vec![
        ("pid".to_owned(), l.pid.to_string()),
        ("comm".to_owned(), l.comm.clone()),
        ("exe".to_owned(), l.exe.clone()),
        ("go_version".to_owned(), l.go_version.clone()),
        ("cgroup".to_owned(), l.cgroup.clone()),
    ];
    if let Some(id) = &l.container_id {
        v.push(("container_id".to_owned(), id.clone()));
    }
    v
}

#[derive(Debug)]
struct AgentCollector(Arc<Mutex<Shared>>);

impl Collector for AgentCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sh = self.0.lock().map_err(|_| std::fmt::Error)?;
        type Pick = fn(&super::ProcMetrics) -> Option<&Hist>;
        let hists: [(&str, &str, Pick); 4] = [
            ("golat_gc_stw_pause_seconds", "GC stop-the-world pauses (what MemStats.PauseTotalNs counts), since attach.", |m| Some(&m.stw_gc)),
            ("golat_stw_other_pause_seconds", "Stop-the-world pauses not made by the GC (ReadMemStats, GOMAXPROCS, profiles), since attach.", |m| Some(&m.stw_other)),
            ("golat_os_runqueue_latency_seconds", "Time the process's threads waited in the kernel run queue, since attach.", |m| Some(&m.runq)),
            ("golat_goroutine_sched_latency_seconds", "Time goroutines waited from runnable to running, since attach (label source: runtime = the runtime's own 1-in-8 sampled histogram; precise = every transition while sampling).", |m| m.goroutine.as_ref().map(|(h, _)| h)),
        ];
        for (name, help, pick) in hists {
            let mut fam = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for e in sh.procs.values() {
                let Some(h) = pick(&e.metrics) else { continue };
                let mut l = labels(&e.labels);
                if name == "golat_goroutine_sched_latency_seconds" {
                    if let Some((_, src)) = &e.metrics.goroutine {
                        l.push(("source".to_owned(), (*src).to_owned()));
                    }
                }
                let (sum, count, b) = buckets(h);
                fam.encode_family(&l)?.encode_histogram::<NoLabelSet>(sum, count, &b, None)?;
            }
        }
        let mut fam = enc.encode_descriptor("golat_gc_cycles", "Completed GC cycles since attach.", None, MetricType::Counter)?;
        for e in sh.procs.values() {
            ConstCounter::new(e.metrics.gc_cycles).encode(fam.encode_family(&labels(&e.labels))?)?;
        }
        for (name, help, pick) in [
            ("golat_gomaxprocs_current", "GOMAXPROCS of the process, read from the runtime.", (|s: &crate::signals::Signal| s.current) as fn(&crate::signals::Signal) -> Option<u32>),
            ("golat_gomaxprocs_recommended", "GOMAXPROCS golat's policy recommends (see /v1/signals for the action, rule and confidence).", |s| s.recommended),
        ] {
            let mut fam = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for e in sh.procs.values() {
                if let Some(v) = e.summary.signal.as_ref().and_then(pick) {
                    ConstGauge::new(i64::from(v)).encode(fam.encode_family(&labels(&e.labels))?)?;
                }
            }
        }
        let mut fam = enc.encode_descriptor("golat_threads", "OS threads of the process.", None, MetricType::Gauge)?;
        for e in sh.procs.values() {
            ConstGauge::new(e.metrics.threads as i64).encode(fam.encode_family(&labels(&e.labels))?)?;
        }

        let me = &sh.me;
        let gauge = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64| -> Result<(), std::fmt::Error> {
            ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        let counter = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64| -> Result<(), std::fmt::Error> {
            ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
        };
        gauge(&mut enc, "golat_processes_watched", "Go processes watched now.", sh.procs.len() as f64)?;
        counter(&mut enc, "golat_processes_discovered", "Go processes seen (watched or skipped).", me.discovered_total)?;
        counter(&mut enc, "golat_processes_attached", "Go processes golat started watching.", me.attached_total)?;
        gauge(&mut enc, "golat_attach_latency_max_seconds", "Longest time from a process's exec to golat watching it.", me.attach_latency_max_ns as f64 / 1e9)?;
        let mean = if me.attach_latency_count > 0 { me.attach_latency_sum_ns as f64 / me.attach_latency_count as f64 / 1e9 } else { 0.0 };
        gauge(&mut enc, "golat_attach_latency_mean_seconds", "Mean time from a process's exec to golat watching it.", mean)?;
        counter(&mut enc, "golat_exec_events", "Exec events received from the kernel.", me.exec_events_total)?;
        gauge(&mut enc, "golat_attached_binaries", "Go binaries with uprobes attached.", me.binaries as f64)?;
        gauge(&mut enc, "golat_uprobe_links", "Uprobe links held.", me.uprobe_links as f64)?;
        gauge(&mut enc, "golat_agent_resident_memory_bytes", "Resident memory of the agent.", me.rss_bytes as f64)?;
        ConstCounter::new(me.cpu_seconds).encode(enc.encode_descriptor("golat_agent_cpu_seconds", "CPU time used by the agent.", None, MetricType::Counter)?)?;
        for (name, help, map) in [
            ("golat_attach_failures", "Go processes that could not be watched, by reason.", &me.attach_failures),
            ("golat_processes_skipped", "Go processes not watched because of filters or the limit, by reason.", &me.skipped),
        ] {
            let mut fam = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (reason, n) in map {
                ConstCounter::new(*n).encode(fam.encode_family(&[("reason", reason.as_str())])?)?;
            }
        }
        let mut fam = enc.encode_descriptor("golat_probe_errors", "Kernel-side data-loss events (ring buffers full, maps full, failed reads), by counter.", None, MetricType::Counter)?;
        for (name, n) in &me.probe_errors {
            ConstCounter::new(*n).encode(fam.encode_family(&[("counter", *name)])?)?;
        }
        let mut fam = enc.encode_descriptor("golat_bpf_map_entries", "Entries in golat's per-process, per-thread and per-goroutine maps.", None, MetricType::Gauge)?;
        for (name, n) in &me.map_entries {
            ConstGauge::new(*n as i64).encode(fam.encode_family(&[("map", *name)])?)?;
        }
        let mut fam = enc.encode_descriptor("golat_bpf_program_runs", "Runs of each eBPF program (counted while kernel.bpf_stats_enabled=1).", None, MetricType::Counter)?;
        for p in &me.programs {
            ConstCounter::new(p.run_count).encode(fam.encode_family(&[("program", p.name.as_str())])?)?;
        }
        let mut fam = enc.encode_descriptor("golat_bpf_program_run_seconds", "Time spent in each eBPF program (counted while kernel.bpf_stats_enabled=1).", None, MetricType::Counter)?;
        for p in &me.programs {
            ConstCounter::new(p.run_time_ns as f64 / 1e9).encode(fam.encode_family(&[("program", p.name.as_str())])?)?;
        }
        Ok(())
    }
}

/// A registry whose only collector reads the shared state.
pub fn registry(shared: Arc<Mutex<Shared>>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(AgentCollector(shared)));
    r
}
