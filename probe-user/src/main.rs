//! `golat`: measures how long Go programs' goroutines wait to run and how long their garbage
//! collector stops the world, from outside the program, with eBPF.

mod agent;
mod cgroup;
mod commands;
mod golayout;
mod hooks;
mod probe;
mod report;
mod runtime_source;
mod shutdown;
mod signals;
mod stats;
mod system;
mod target;
mod watch;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "golat", version, about)]
struct Cli {
    /// Log more (repeat for debug output, including the eBPF programs' diagnostics).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Record(commands::record::RecordArgs),
    Inspect(commands::inspect::InspectArgs),
    Agent(commands::agent::AgentArgs),
}

fn main() {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new().filter_level(level).parse_default_env().format_target(false).init();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let code = rt.block_on(async {
        let cancel = match shutdown::install() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("golat: cannot install signal handlers: {e}");
                return 1;
            }
        };
        let result = match cli.command {
            Command::Record(args) => commands::record::run(args, cancel).await,
            Command::Inspect(args) => commands::inspect::run(&args),
            Command::Agent(args) => commands::agent::run(args, cancel).await,
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("golat: {e:#}");
                1
            }
        }
    });
    std::process::exit(code);
}
