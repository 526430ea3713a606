//! OS run-queue latency: more busy threads than CPUs must show waits in the milliseconds; the
//! same program without the busy threads must not.

use integration_tests::{
    go_build::Variant,
    harness::{Lines, build_workload, go_toolchains, golat, kernel_tests_can_run, num, run_ok},
};

fn record_runq(spinners: usize) -> (u64, u64, u64) {
    let go = go_toolchains().pop().expect("a Go toolchain");
    let bin = build_workload("runq", &go, Variant::Default);
    let out = run_ok(golat().args(["record", "--json", "--"]).arg(&bin).args([
        "-spinners",
        &spinners.to_string(),
        "-duration",
        "3s",
    ]));
    let lines = Lines::parse(&out.stdout);
    let w = lines.others.iter().find(|v| v.get("ticks").is_some()).expect("workload output");
    let s = lines.summary(lines.of_type("summary")[0]["pid"].as_u64().expect("pid"));
    println!(
        "spinners={spinners}: os_runq count={} p50={}ns p99={}ns max={}ns; workload worst oversleep {}ns",
        num(s, "os_runq.count"),
        num(s, "os_runq.p50_ns"),
        num(s, "os_runq.p99_ns"),
        num(s, "os_runq.max_ns"),
        num(w, "worst_oversleep_ns")
    );
    (num(s, "os_runq.count"), num(s, "os_runq.p99_ns"), num(s, "os_runq.max_ns"))
}

#[test]
fn contended_cpu_shows_runqueue_wait_and_idle_does_not() {
    if !kernel_tests_can_run() {
        return;
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (idle_count, idle_p99, _) = record_runq(0);
    let (busy_count, busy_p99, busy_max) = record_runq(cpus * 2);
    assert!(idle_count > 1000, "the ticker wakes ~1000 times a second: {idle_count}");
    assert!(idle_p99 < 1_000_000, "idle p99 {idle_p99}ns should be well below 1ms");
    assert!(busy_count > 0);
    assert!(busy_p99 > 1_000_000, "contended p99 {busy_p99}ns should exceed 1ms");
    assert!(busy_max >= busy_p99);
}
