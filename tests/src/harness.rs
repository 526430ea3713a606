//! Runs the real `golat` binary and parses what it prints.
//!
//! Kernel tests need root and BPF. Outside CI they skip with a printed reason when those are
//! missing; with `CI=true` a skip is a failure, so CI cannot go green without running them.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::Value;

use crate::go_build::{self, GoArch, GoToolchain, Variant};

/// True when running in CI, where kernel tests must not skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns false (after printing why) when the kernel tests cannot run here; panics instead
/// in CI.
pub fn kernel_tests_can_run() -> bool {
    // SAFETY: no preconditions.
    let euid = unsafe { libc::geteuid() };
    let reason = if euid != 0 {
        Some("not root".to_owned())
    } else if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        Some("no kernel BTF".to_owned())
    } else if !golat_bin().exists() {
        Some(format!("{} not built (run `cargo xtask test`)", golat_bin().display()))
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if in_ci() => panic!("kernel test cannot run in CI: {r}"),
        Some(r) => {
            eprintln!("SKIPPED: kernel test needs root, BPF and a built golat: {r}");
            false
        }
    }
}

/// The golat binary under test: `GOLAT_BIN` (set by `cargo xtask test`) or target/release.
pub fn golat_bin() -> PathBuf {
    std::env::var_os("GOLAT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| go_build::target_dir().join("release/golat"))
}

pub fn golat() -> Command {
    Command::new(golat_bin())
}

/// Every installed Go toolchain; panics (a test must not pass on an empty matrix) if none.
pub fn go_toolchains() -> Vec<GoToolchain> {
    let all = go_build::installed_go();
    assert!(!all.is_empty(), "no Go toolchain installed (run `cargo xtask setup`)");
    all
}

/// Builds a workload from tests/workloads for the host architecture.
pub fn build_workload(name: &str, go: &GoToolchain, variant: Variant) -> PathBuf {
    let arch = GoArch::host().expect("supported host architecture");
    go_build::build(&go_build::workload_dir(name), go, variant, arch)
        .unwrap_or_else(|e| panic!("building {name} with {} ({}): {e:#}", go.version, variant.name()))
}

/// The JSON lines of an output, split into golat's envelope records and other JSON objects
/// (what the workloads print).
pub struct Lines {
    pub records: Vec<(String, Value)>,
    pub others: Vec<Value>,
}

impl Lines {
    pub fn parse(stdout: &[u8]) -> Lines {
        let mut records = Vec::new();
        let mut others = Vec::new();
        for line in String::from_utf8_lossy(stdout).lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            match (v.get("type").and_then(Value::as_str), v.get("data")) {
                (Some(t), Some(d)) => records.push((t.to_owned(), d.clone())),
                _ => others.push(v),
            }
        }
        Lines { records, others }
    }

    pub fn of_type(&self, t: &str) -> Vec<&Value> {
        self.records.iter().filter(|(k, _)| k == t).map(|(_, v)| v).collect()
    }

    /// The single summary record for `pid`.
    pub fn summary(&self, pid: u64) -> &Value {
        let s: Vec<_> = self.of_type("summary").into_iter().filter(|v| v["pid"].as_u64() == Some(pid)).collect();
        assert_eq!(s.len(), 1, "expected one summary for pid {pid}, got {}", s.len());
        s[0]
    }
}

/// Runs a command and panics with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A number from a JSON object by path `a.b.c`; panics with the record when missing.
pub fn num(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for p in path.split('.') {
        cur = &cur[p];
    }
    cur.as_u64().unwrap_or_else(|| panic!("no integer {path} in {v}"))
}
