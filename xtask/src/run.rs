//! `cargo xtask run`: the main job on this machine, end to end.

use std::process::Command;

use anyhow::Context as _;
use integration_tests::go_build::{self, GoArch, Variant};

use crate::util::{run as run_cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How long the bundled demo runs (and is recorded) when no target is given.
    #[arg(long, default_value = "10s")]
    pub demo_duration: String,
    /// Arguments for `golat record` (e.g. `--pid 1234 --duration 10s`). Empty: record the
    /// bundled demo workload.
    #[arg(last = true)]
    pub golat_args: Vec<String>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    crate::setup::run(&crate::setup::SetupArgs::default())?;
    let golat = crate::build::golat()?;
    let mut cmd = Command::new(&golat);
    cmd.arg("record");
    if args.golat_args.is_empty() {
        let go = go_build::installed_go().pop().context("no Go toolchain found (run `cargo xtask setup`)")?;
        let arch = GoArch::host().context("unsupported host architecture")?;
        let demo = go_build::build(&workspace_root().join("tests/workloads/demo"), &go, Variant::Default, arch)?;
        eprintln!("xtask: recording the bundled demo workload ({}, {})", demo.display(), go.version);
        cmd.args(["--", demo.to_str().context("non-UTF-8 path")?, "-duration", &args.demo_duration]);
    } else {
        cmd.args(&args.golat_args);
    }
    run_cmd(&mut cmd)
}
