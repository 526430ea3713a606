//! GC stop-the-world pauses and cycles, per installed Go version and build variant, against
//! the Go runtime's own numbers (MemStats and runtime/metrics), on the real kernel.

use integration_tests::{
    go_build::Variant,
    harness::{Lines, build_workload, go_toolchains, golat, kernel_tests_can_run, num, run_ok},
};

const CYCLES: u64 = 20;
const READ_MEM_STATS: u64 = 5;

fn check(variant: Variant) {
    if !kernel_tests_can_run() {
        return;
    }
    for go in go_toolchains() {
        let bin = build_workload("gcstw", &go, variant);
        let out = run_ok(golat().args(["record", "--json", "--interval", "100ms", "--"]).arg(&bin).args([
            "-cycles",
            &CYCLES.to_string(),
            "-readmemstats",
            &READ_MEM_STATS.to_string(),
        ]));
        let lines = Lines::parse(&out.stdout);
        let rt = lines.others.iter().find(|v| v.get("num_gc").is_some()).expect("workload printed its runtime view");
        let pid = num(rt, "pid");
        let s = lines.summary(pid);
        let (minor, label) = (go.version_tuple().1, format!("{} {}", go.version, variant.name()));

        let rt_cycles = num(rt, "num_gc");
        let rt_pauses = num(rt, "gc_pauses");
        let rt_total = num(rt, "pause_total_ns");
        let stw_count = num(s, "stw.count");
        let stw_total = num(s, "stw.total_ns");
        let err = (stw_total as f64 - rt_total as f64) / rt_total as f64;
        println!(
            "{label}: golat gc.cycles={} stw.count={stw_count} stw.total_ns={stw_total} | runtime NumGC={rt_cycles} pauses={rt_pauses} PauseTotalNs={rt_total} | error {:+.2}% | stw_other.count={}",
            num(s, "gc.cycles"),
            err * 100.0,
            num(s, "stw_other.count"),
        );
        assert!(rt_cycles >= CYCLES, "{label}: workload ran {rt_cycles} cycles");
        assert_eq!(num(s, "gc.cycles"), rt_cycles, "{label}: GC cycles");
        assert_eq!(stw_count, rt_pauses, "{label}: GC pause count vs /gc/pauses:seconds");
        assert!(stw_count >= 2 * rt_cycles, "{label}: at least two pauses per cycle");
        // The bar is 10%; golat reads the runtime's own start and end times (Go 1.22+:
        // worldStop.startedStopping and start's result; <= 1.21: the nanotime() values around
        // the pause), so the totals are equal to the nanosecond.
        assert!(err.abs() <= 0.10, "{label}: GC pause total {stw_total} vs PauseTotalNs {rt_total}");
        assert_eq!(s["probe"]["pause_clock"], "runtime", "{label}");
        assert_eq!(stw_total, rt_total, "{label}: exact GC pause total (minor {minor})");
        // ReadMemStats stops the world without GC: it must be counted apart.
        let other = num(s, "stw_other.count");
        let calls = num(rt, "read_mem_stats_calls") + 1; // + the baseline read
        assert!(other >= calls && other <= calls + 2, "{label}: stw_other.count {other}, ReadMemStats calls {calls}");
        assert_eq!(num(s, "probe.stw_unpaired"), 0, "{label}");
        assert!(s["exited"].as_bool().unwrap_or(false), "{label}: exit noticed");
        let lost = lines.of_type("probe_errors");
        assert_eq!(lost.len(), 1);
        for (k, v) in lost[0]["counters"].as_object().expect("counters") {
            assert_eq!(v.as_u64(), Some(0), "{label}: data lost: {k}");
        }
    }
}

#[test]
fn stw_matches_runtime_default_build() {
    check(Variant::Default);
}

#[test]
fn stw_matches_runtime_stripped_build() {
    check(Variant::Stripped);
}

#[test]
fn stw_matches_runtime_pie_build() {
    check(Variant::Pie);
}

#[test]
fn stw_matches_runtime_cgo_pie_stripped_build() {
    let arch = integration_tests::go_build::GoArch::host().expect("host arch");
    if let Err(why) = integration_tests::go_build::can_build(Variant::CgoPieStripped, arch) {
        assert!(!integration_tests::harness::in_ci(), "cgo build impossible in CI: {why}");
        eprintln!("SKIPPED: {why}");
        return;
    }
    check(Variant::CgoPieStripped);
}
