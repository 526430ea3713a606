//! `cargo xtask test`: every test, on the real kernel. With CI=true a kernel test that cannot
//! run is a failure, not a skip.

use crate::util::{cargo, run as run_cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Extra arguments for the test binaries (e.g. a test name filter).
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    crate::setup::run(&crate::setup::SetupArgs::default())?;
    let golat = crate::build::golat()?;
    let root = workspace_root();
    // Unit tests and file-only tests of every crate but the eBPF one (a no_std bpf binary).
    run_cmd(cargo()
        .current_dir(&root)
        .args(["test", "--release", "--workspace", "--exclude", "probe-ebpf", "--exclude", "integration-tests", "--"])
        .args(&args.test_args))?;
    // Kernel integration tests: real Go programs under the real probe. One at a time, since
    // they measure scheduling on a 2-core machine.
    run_cmd(cargo()
        .current_dir(&root)
        .env("GOLAT_BIN", &golat)
        .args(["test", "--release", "--package", "integration-tests", "--", "--test-threads=1"])
        .args(&args.test_args))
}
