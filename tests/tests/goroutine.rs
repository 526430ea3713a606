//! Goroutine scheduling latency (precise source) against the runtime's own
//! `/sched/latencies:seconds` and the workload's measured wake-up delays, per Go version.

use integration_tests::{
    go_build::Variant,
    harness::{Lines, build_workload, go_toolchains, golat, kernel_tests_can_run, num, run_ok},
};
use serde_json::Value;

const SPAWN: u64 = 200;

fn record(go: &integration_tests::go_build::GoToolchain, spinners: u32) -> (Value, Value) {
    let bin = build_workload("schedlat", go, Variant::Default);
    let out = run_ok(
        golat()
            .env("GOMAXPROCS", "1")
            .args(["record", "--json", "--precise-duty", "always", "--"])
            .arg(&bin)
            .args(["-spinners", &spinners.to_string(), "-spawn", &SPAWN.to_string(), "-duration", "2s"]),
    );
    let lines = Lines::parse(&out.stdout);
    let w = lines.others.iter().find(|v| v.get("ticks").is_some()).expect("workload output").clone();
    let pid = lines.of_type("summary")[0]["pid"].as_u64().expect("pid");
    let s = lines.summary(pid)["goroutine_sched"].clone();
    (s, w)
}

/// Runtime histogram quantiles are bucket upper bounds (buckets up to 2x wide in Go 1.19,
/// 1.25x from 1.20); golat's are within 6.25%. Two values agree when they are within one
/// runtime bucket of each other.
fn same_bucket_or_next(golat_ns: u64, runtime_upper_ns: f64) -> bool {
    let g = golat_ns as f64;
    g <= runtime_upper_ns * 1.3 && g >= runtime_upper_ns / 2.6
}

#[test]
fn goroutine_latency_matches_runtime_and_workload() {
    if !kernel_tests_can_run() {
        return;
    }
    for go in go_toolchains() {
        let label = go.version.clone();
        let (busy, bw) = record(&go, 4);
        let (idle, iw) = record(&go, 0);
        println!(
            "{label} GOMAXPROCS=1, 4 spinners: golat p50={} p99={} count={} | runtime p50<={} p99<={} (n={}) | ticker delay p50={} p99={}",
            num(&busy, "p50_ns"),
            num(&busy, "p99_ns"),
            num(&busy, "count"),
            bw["rt_sched_p50_ns"],
            bw["rt_sched_p99_ns"],
            bw["rt_sched_count"],
            bw["tick_delay_p50_ns"],
            bw["tick_delay_p99_ns"]
        );
        println!(
            "{label} no spinners: golat p50={} p99={} | runtime p50<={} p99<={} | ticker delay p99={}",
            num(&idle, "p50_ns"),
            num(&idle, "p99_ns"),
            iw["rt_sched_p50_ns"],
            iw["rt_sched_p99_ns"],
            iw["tick_delay_p99_ns"]
        );
        assert_eq!(busy["source"], "precise");
        // Contended: waits in the milliseconds (spinners are preempted every 10 ms).
        assert!(num(&busy, "p50_ns") > 1_000_000, "{label}: {busy}");
        assert!(num(&busy, "p99_ns") > num(&busy, "p50_ns"));
        // Without the spinners: well below 1 ms.
        assert!(num(&idle, "p99_ns") < 1_000_000, "{label}: {idle}");
        // The workload's ticker wakes late by about a goroutine wait: same order.
        let tick = num(&bw, "tick_delay_p50_ns");
        assert!(tick > 1_000_000, "{label}: ticker delay {tick}");
        // Against the runtime's histogram (sampled 1 in 8, bucketed).
        if bw["rt_present"] == true {
            let rt50 = bw["rt_sched_p50_ns"].as_f64().expect("rt p50");
            assert!(same_bucket_or_next(num(&busy, "p50_ns"), rt50), "{label}: p50 golat {} vs runtime <= {rt50}", num(&busy, "p50_ns"));
            let rt99 = iw["rt_sched_p99_ns"].as_f64().expect("rt p99");
            assert!(num(&idle, "p99_ns") as f64 <= rt99 * 4.0, "{label}: idle p99 golat {} vs runtime <= {rt99}", num(&idle, "p99_ns"));
        }
        // Every goroutine the workload created was seen becoming runnable (plus the runtime's
        // own few).
        let created = num(&busy, "goroutines_created");
        assert!((SPAWN..SPAWN + 30).contains(&created), "{label}: created {created}");
        // Long waits come with exemplars naming a goroutine and thread.
        let ex = busy["top_exemplars"].as_array().expect("exemplars");
        assert!(!ex.is_empty(), "{label}: no exemplars");
        assert!(ex.iter().all(|e| e["wait_ns"].as_u64().unwrap_or(0) >= 1_000_000 && e["tid"].as_u64().unwrap_or(0) > 0));
        assert!(ex.iter().any(|e| e["goid"].as_u64().unwrap_or(0) > 0), "{label}: goids read");
        // One P, two CPUs: the waits are Go scheduler waits, not CPU waits.
        let f = busy["split"]["cpu_wait_fraction"].as_f64().expect("split");
        assert!(f < 0.2, "{label}: cpu_wait_fraction {f}");
    }
}

#[test]
fn stress_goroutine_churn_under_precise_mode_is_unchanged() {
    if !kernel_tests_can_run() {
        return;
    }
    // The stack-growing, goroutine-churning demo must run to completion with the probe on.
    let go = go_toolchains().pop().expect("a Go toolchain");
    let bin = build_workload("demo", &go, Variant::Default);
    let out = run_ok(golat().args(["record", "--json", "--precise-duty", "always", "--"]).arg(&bin).args(["-duration", "3s"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("demo: served"), "{text}");
    let lines = Lines::parse(&out.stdout);
    let pid = lines.of_type("summary")[0]["pid"].as_u64().expect("pid");
    let s = lines.summary(pid);
    assert!(num(s, "goroutine_sched.count") > 1000, "{s}");
    assert_eq!(s["exited"], true);
    for (k, v) in lines.of_type("probe_errors")[0]["counters"].as_object().expect("counters") {
        assert_eq!(v.as_u64(), Some(0), "data lost: {k}");
    }
}
