//! `cargo xtask test`: every test, on the real kernel. With CI=true a kernel test that cannot
//! run is a failure, not a skip.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::util::{cargo, workspace_root};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Only the arm64 machine test (also the last step of a full run): boot an emulated arm64 machine (qemu-system-aarch64, TCG)
    /// with Debian's arm64 kernel and check the arm64 golat's GC numbers there against the Go
    /// runtime's own (see docs/architectures.md).
    #[arg(long)]
    pub arm64_vm: bool,
    /// Debian suite of the arm64 VM's kernel (`bookworm-backports`: 6.12; `bookworm`: 6.1).
    #[arg(long, default_value = crate::arm64_vm::DEFAULT_SUITE, value_name = "SUITE")]
    pub arm64_vm_suite: String,
    /// Extra arguments for the test binaries (e.g. a test name filter).
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

/// Totals over every `test result:` line cargo printed.
#[derive(Debug, Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Runs `cargo test ...`, echoing its output, and adds up its result lines.
fn cargo_test(cmd: &mut Command, totals: &mut Totals) -> anyhow::Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let mut child = cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("failed to run {cmd:?}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |what: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| part.trim().strip_suffix(what).map(str::trim))
                    .and_then(|n| n.rsplit(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            totals.passed += count("passed");
            totals.failed += count("failed");
            totals.ignored += count("ignored");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    crate::setup::run(&crate::setup::SetupArgs::default())?;
    if args.arm64_vm {
        return crate::arm64_vm::run(&args.arm64_vm_suite);
    }
    let golat = crate::build::golat()?;
    let root = workspace_root();
    let mut totals = Totals::default();
    // Unit tests and file-only tests of every crate but the eBPF one (a no_std bpf binary).
    let unit = cargo_test(
        cargo()
            .current_dir(&root)
            .args(["test", "--release", "--workspace", "--exclude", "probe-ebpf", "--exclude", "integration-tests", "--"])
            .args(&args.test_args),
        &mut totals,
    );
    // Kernel integration tests: real Go programs under the real probe. One at a time, since
    // they measure scheduling on a 2-core machine.
    let kernel = unit.and_then(|()| {
        cargo_test(
            cargo()
                .current_dir(&root)
                .env("GOLAT_BIN", &golat)
                .args(["test", "--release", "--package", "integration-tests", "--", "--test-threads=1"])
                .args(&args.test_args),
            &mut totals,
        )
    });
    // arm64 as a first-class target: the cross-built golat must link and embed the arm64 eBPF
    // object (the arm64 Go binaries themselves are checked by the file-level tests above).
    let arm64 = kernel.and_then(|()| {
        let result = crate::build::golat_arm64().map(|_| ());
        match &result {
            Ok(()) => totals.passed += 1,
            Err(_) => totals.failed += 1,
        }
        result.context("arm64 cross-build")
    });
    // The arm64 golat on a real arm64 kernel (emulated machine; about 3 minutes, see
    // docs/testing.md). Not with a test-name filter: that asks for some tests only.
    let arm64_vm = arm64.and_then(|()| {
        if !args.test_args.is_empty() {
            eprintln!("xtask: arm64 VM test not run (test arguments given; run `cargo xtask test --arm64-vm`)");
            totals.ignored += 1;
            return Ok(());
        }
        let result = crate::arm64_vm::run(&args.arm64_vm_suite);
        match &result {
            Ok(()) => totals.passed += 1,
            Err(_) => totals.failed += 1,
        }
        result
    });
    // The closing line CI reads.
    println!("xtask: {} passed, {} failed, {} skipped", totals.passed, totals.failed, totals.ignored);
    arm64_vm
}
