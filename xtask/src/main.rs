//! `cargo xtask <command>`: everything a fresh machine needs, in the project's own code.

mod arm64_vm;
mod bench;
mod build;
mod run;
mod setup;
mod test;
mod util;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install and check everything golat needs on this machine (idempotent).
    Setup(setup::SetupArgs),
    /// Set up, build golat (release) and print its path (`--arm64`: cross-build for arm64).
    Build(build::BuildArgs),
    /// Set up, build, and record a Go program (the bundled demo workload when no target is
    /// given). Arguments after `--` go to `golat record`.
    Run(run::RunArgs),
    /// Set up, build, and run every test: unit tests, binary-analysis tests and the kernel
    /// integration tests (which must not skip when CI=true).
    Test(test::TestArgs),
    /// Set up, build, and run a benchmark (`overhead`: what golat costs a Go program).
    Bench(bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}
