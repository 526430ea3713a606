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
            .args(["record", "--json", "--interval", "100ms", "--goroutine-source", "both", "--precise-duty", "always", "--"])
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
/// 1.25x from 1.20) over a 1-in-8 sample; golat's precise ones are within 6.25% over every
/// transition. With 4 spinners preempted every 10 ms the waits cluster near 10, 20, 30 and
/// 40 ms, so a median can land on neighbouring clusters in the two populations: agreement
/// means within a factor of two either way of the runtime's bucket.
fn agrees(golat_ns: u64, runtime_upper_ns: f64) -> bool {
    let g = golat_ns as f64;
    g <= runtime_upper_ns * 2.0 && g >= runtime_upper_ns / 4.0
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
        assert_eq!(busy["source"], "both");
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
            assert!(agrees(num(&busy, "p50_ns"), rt50), "{label}: p50 golat {} vs runtime <= {rt50}", num(&busy, "p50_ns"));
            let rt99 = iw["rt_sched_p99_ns"].as_f64().expect("rt p99");
            assert!(num(&idle, "p99_ns") as f64 <= rt99 * 4.0, "{label}: idle p99 golat {} vs runtime <= {rt99}", num(&idle, "p99_ns"));
        }
        // The runtime source reads the very histogram the workload reports: the same bucket
        // (golat takes bucket midpoints, the workload bucket upper bounds). Its last read is at
        // the last interval before the process exits, so it can miss the final moments.
        if bw["rt_present"] == true {
            let view = &busy["runtime"];
            let rt50 = bw["rt_sched_p50_ns"].as_f64().expect("rt p50");
            let g50 = num(view, "p50_ns") as f64;
            // Same histogram, but the workload's window is its own run while golat's ends at
            // its last read (100 ms before exit at most); with waits clustered at 10/20/30/40 ms
            // a few samples can move the median one cluster, hence `agrees`.
            assert!(agrees(g50 as u64, rt50), "{label}: runtime-source p50 {g50} vs runtime <= {rt50}");
            assert!(num(view, "count") > 0 && num(view, "count") <= num(&bw, "rt_sched_count") + 16, "{label}: {view}");
            assert!(num(view, "p99_ns") > 1_000_000, "{label}: {view}");
            let iv = &idle["runtime"];
            assert!(num(iv, "p99_ns") < 1_000_000, "{label}: idle runtime-source p99 {iv}");
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
    // Stack-growing, goroutine-churning program: with the probe on every goroutine state
    // change it must not crash and must print exactly what it prints unwatched.
    for go in go_toolchains() {
        let bin = build_workload("churn", &go, Variant::Default);
        let plain = run_ok(&mut std::process::Command::new(&bin));
        let out = run_ok(golat().args(["record", "--json", "--goroutine-source", "precise", "--precise-duty", "always", "--"]).arg(&bin));
        let want = String::from_utf8_lossy(&plain.stdout).into_owned();
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(want.starts_with("churn: "), "{want}");
        assert!(got.lines().any(|l| l == want.trim_end()), "{}: output changed under golat:\n{got}\nwant {want}", go.version);
        let lines = Lines::parse(&out.stdout);
        let pid = lines.of_type("summary")[0]["pid"].as_u64().expect("pid");
        let s = lines.summary(pid);
        assert!(num(s, "goroutine_sched.goroutines_created") >= 200 * 64, "{}: {s}", go.version);
        for (k, v) in lines.of_type("probe_errors")[0]["counters"].as_object().expect("counters") {
            // Thousands of goroutines wait over the exemplar threshold here: exemplars beyond
            // the ring buffer are dropped and counted (the histograms still have every wait).
            if k != "exemplar_ringbuf_full" {
                assert_eq!(v.as_u64(), Some(0), "{}: data lost: {k}", go.version);
            }
        }
        println!("{}: {} under golat, {} goroutine waits measured", go.version, want.trim_end(), num(s, "goroutine_sched.count"));
    }
}
