//! Bad targets get one clear line and a non-zero exit when nothing could be recorded; good
//! targets next to them are still recorded.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    go_build::Variant,
    harness::{Lines, build_workload, go_toolchains, golat, kernel_tests_can_run, num},
};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_pid_is_a_clear_error() {
    if !kernel_tests_can_run() {
        return;
    }
    let out = golat().args(["record", "--pid", "999999999", "--duration", "1s"]).output().expect("run golat");
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("pid 999999999: no such process"), "{err}");
    assert!(err.contains("nothing to record"), "{err}");
}

#[test]
fn non_go_process_is_refused_and_go_process_still_recorded() {
    if !kernel_tests_can_run() {
        return;
    }
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let go = go_toolchains().pop().expect("a Go toolchain");
    let bin = build_workload("runq", &go, Variant::Default);
    let mut gop = Command::new(&bin).args(["-duration", "3s"]).stdout(Stdio::null()).spawn().expect("spawn go");
    std::thread::sleep(Duration::from_millis(200));
    let out = golat()
        .args(["record", "--json", "--duration", "1s", "--pid"])
        .arg(sleeper.id().to_string())
        .arg("--pid")
        .arg(gop.id().to_string())
        .output()
        .expect("run golat");
    let _ = sleeper.kill();
    let _ = gop.kill();
    let _ = sleeper.wait();
    let _ = gop.wait();
    let err = stderr_of(&out);
    assert!(out.status.success(), "a Go process was recorded, so success: {err}");
    assert!(err.contains("not a Go binary"), "{err}");
    let lines = Lines::parse(&out.stdout);
    let failures = lines.of_type("attach_error");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["reason"], "not_go");
    assert_eq!(num(failures[0], "pid"), u64::from(sleeper.id()));
    let s = lines.summary(u64::from(gop.id()));
    assert!(num(s, "os_runq.count") > 0, "the Go process was recorded: {s}");

    // Only a non-Go target: nothing recorded, non-zero exit, one clear line.
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let out = golat().args(["record", "--duration", "1s", "--pid"]).arg(sleeper.id().to_string()).output().expect("run golat");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("not a Go binary"), "{}", stderr_of(&out));
}

#[test]
fn non_go_command_is_refused() {
    if !kernel_tests_can_run() {
        return;
    }
    let out = golat().args(["record", "--", "true"]).output().expect("run golat");
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("not a Go binary"), "{}", stderr_of(&out));
}

#[test]
fn unprivileged_user_gets_one_clear_line() {
    if !kernel_tests_can_run() {
        return;
    }
    // setpriv drops to nobody with no capabilities.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(integration_tests::harness::golat_bin())
        .args(["record", "--pid", "1", "--duration", "1s"])
        .output()
        .expect("run setpriv (util-linux)");
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("golat needs root"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn process_exiting_mid_capture_is_summarised() {
    if !kernel_tests_can_run() {
        return;
    }
    let go = go_toolchains().pop().expect("a Go toolchain");
    let bin = build_workload("runq", &go, Variant::Default);
    let mut gop = Command::new(&bin).args(["-duration", "1s"]).stdout(Stdio::null()).spawn().expect("spawn go");
    let out = golat()
        .args(["record", "--json", "--duration", "10s", "--pid"])
        .arg(gop.id().to_string())
        .output()
        .expect("run golat");
    let _ = gop.wait();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let lines = Lines::parse(&out.stdout);
    let s = lines.summary(u64::from(gop.id()));
    assert_eq!(s["exited"], true);
    assert!(num(s, "duration_ns") < 5_000_000_000, "ended at exit, not at --duration: {s}");
    assert!(!lines.of_type("interval").is_empty(), "interval records while it ran");
}

#[test]
fn pid_mode_records_pauses_after_attach() {
    if !kernel_tests_can_run() {
        return;
    }
    let go = go_toolchains().pop().expect("a Go toolchain");
    let bin = build_workload("gcstw", &go, Variant::Default);
    let gop = Command::new(&bin)
        .args(["-wait-signal", "-cycles", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gcstw");
    let pid = gop.id();
    let mut golat_child = golat()
        .args(["record", "--json", "--pid"])
        .arg(pid.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run golat");
    // golat prints "recording pid N" on stderr once the probes are in place.
    let stderr = golat_child.stderr.take().expect("stderr");
    let mut reader = std::io::BufReader::new(stderr);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).expect("read golat stderr");
    assert!(line.contains(&format!("recording pid {pid}")), "{line}");
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    let go_out = gop.wait_with_output().expect("gcstw output");
    let out = golat_child.wait_with_output().expect("golat output");
    assert!(out.status.success());
    let rt: serde_json::Value = serde_json::from_slice(&go_out.stdout).expect("runtime view");
    let lines = Lines::parse(&out.stdout);
    let s = lines.summary(u64::from(pid));
    assert_eq!(num(s, "gc.cycles"), num(&rt, "num_gc"), "{s}\n{rt}");
    assert_eq!(num(s, "stw.count"), num(&rt, "gc_pauses"), "{s}\n{rt}");
}

#[test]
fn missing_tracefs_is_mounted_by_golat() {
    if !kernel_tests_can_run() {
        return;
    }
    let mounted = || std::fs::read_to_string("/proc/self/mounts").expect("mounts").lines().any(|l| l.split_whitespace().nth(2) == Some("tracefs"));
    if mounted() {
        let st = Command::new("umount").arg("/sys/kernel/tracing").status().expect("umount");
        assert!(st.success(), "cannot unmount tracefs for the test");
    }
    assert!(!mounted());
    let go = go_toolchains().pop().expect("a Go toolchain");
    let bin = build_workload("gcstw", &go, Variant::Default);
    let out = golat().args(["record", "--json", "--"]).arg(&bin).args(["-cycles", "2"]).output().expect("run golat");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(mounted(), "golat mounts tracefs when it is missing");
}

#[test]
fn go_version_outside_supported_range_is_refused() {
    if !kernel_tests_can_run() {
        return;
    }
    let go = go_toolchains().pop().expect("a Go toolchain");
    let bin = build_workload("gcstw", &go, Variant::Default);
    // Same program, but its build info (and runtime.buildVersion) claim Go 1.16.
    let mut data = std::fs::read(&bin).expect("read workload");
    let (from, to) = (go.version.as_bytes(), format!("go1.16{}", &go.version[6..]));
    assert_eq!(from.len(), to.len());
    let mut patched = 0;
    let mut i = 0;
    while let Some(pos) = data[i..].windows(from.len()).position(|w| w == from) {
        data[i + pos..i + pos + from.len()].copy_from_slice(to.as_bytes());
        patched += 1;
        i += pos + from.len();
    }
    assert!(patched > 0, "version string found");
    let dir = std::env::temp_dir().join(format!("golat-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let old = dir.join("gcstw-old-go");
    std::fs::write(&old, &data).expect("write patched binary");
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let out = golat().args(["record", "--json", "--"]).arg(&old).args(["-cycles", "1"]).output().expect("run golat");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("go1.16") && err.contains("not supported"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn deleted_binary_is_still_attached_through_proc_exe() {
    if !kernel_tests_can_run() {
        return;
    }
    let go = go_toolchains().pop().expect("a Go toolchain");
    let bin = build_workload("gcstw", &go, Variant::Default);
    let dir = std::env::temp_dir().join(format!("golat-deleted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let copy = dir.join("gcstw-deleted");
    std::fs::copy(&bin, &copy).expect("copy");
    let gop = Command::new(&copy).args(["-wait-signal", "-cycles", "5"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(200));
    std::fs::remove_dir_all(&dir).expect("delete the binary");
    let pid = gop.id();
    let mut g = golat().args(["record", "--json", "--pid"]).arg(pid.to_string()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("golat");
    let mut reader = std::io::BufReader::new(g.stderr.take().expect("stderr"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
    assert!(line.contains(&format!("recording pid {pid}")), "{line}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    let go_out = gop.wait_with_output().expect("workload");
    let out = g.wait_with_output().expect("golat");
    let rt: serde_json::Value = serde_json::from_slice(&go_out.stdout).expect("runtime view");
    let s = Lines::parse(&out.stdout).summary(u64::from(pid)).clone();
    assert!(s["exe"].as_str().unwrap_or("").contains("(deleted)"), "{s}");
    assert_eq!(num(&s, "stw.count"), num(&rt, "gc_pauses"), "{s}\n{rt}");
    assert_eq!(num(&s, "stw.total_ns"), num(&rt, "pause_total_ns"), "{s}\n{rt}");
}
