//! `cargo xtask bench overhead`: what golat costs the program it watches, measured side by
//! side in one run. A goroutine-heavy Go benchmark (channel ping-pong, many timers, a loopback
//! HTTP server under a bounded client loop) runs without golat and under golat in each mode,
//! interleaved, several times; the table gives median throughput relative to the unwatched
//! runs and the kernel's ns per BPF program run (`kernel.bpf_stats_enabled`). No assertions:
//! the numbers are for reading.

use std::{collections::BTreeMap, process::Command};

use anyhow::{Context as _, bail};
use integration_tests::go_build::{self, GoArch, Variant};

use crate::util::workspace_root;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure (only `overhead` so far).
    #[arg(default_value = "overhead")]
    pub what: String,
    /// Runs per mode (interleaved).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Length of one benchmark run (three equal phases).
    #[arg(long, default_value = "6s")]
    pub duration: String,
}

const PARTS: [&str; 3] = ["pingpong_ops", "timer_fires", "http_reqs"];

struct Mode {
    name: &'static str,
    golat_args: Option<&'static [&'static str]>,
}

const MODES: &[Mode] = &[
    Mode { name: "unwatched", golat_args: None },
    Mode { name: "golat default (runtime source)", golat_args: Some(&[]) },
    Mode { name: "golat precise 1s/10s", golat_args: Some(&["--goroutine-source", "both", "--precise-duty", "1s/10s"]) },
    Mode { name: "golat precise always", golat_args: Some(&["--goroutine-source", "precise", "--precise-duty", "always"]) },
    Mode { name: "empty uprobe on casgstatus", golat_args: Some(&["--goroutine-source", "empty-probe", "--precise-duty", "always"]) },
];

fn workload_line(stdout: &str) -> Option<serde_json::Value> {
    stdout.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find(|v| v.get("pingpong_ops").is_some())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn set_bpf_stats(on: bool) -> Option<String> {
    let path = "/proc/sys/kernel/bpf_stats_enabled";
    let old = std::fs::read_to_string(path).ok();
    let _ = std::fs::write(path, if on { "1" } else { "0" });
    old
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.what != "overhead" {
        bail!("unknown benchmark {:?} (available: overhead)", args.what);
    }
    crate::setup::run(&crate::setup::SetupArgs::default())?;
    let golat = crate::build::golat()?;
    let go = go_build::installed_go().pop().context("no Go toolchain (run `cargo xtask setup`)")?;
    let arch = GoArch::host().context("unsupported host")?;
    let bench = go_build::build(&workspace_root().join("tests/workloads/bench"), &go, Variant::Default, arch)?;
    let old_stats = set_bpf_stats(true);
    eprintln!("xtask: bench overhead with {} ({}), {} runs per mode of {}", bench.display(), go.version, args.reps, args.duration);

    // mode -> part -> rates; mode -> program -> (runs, ns)
    let mut rates: BTreeMap<usize, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    let mut progs: BTreeMap<usize, BTreeMap<String, (u64, u64)>> = BTreeMap::new();
    for rep in 0..args.reps {
        for (mi, mode) in MODES.iter().enumerate() {
            let mut cmd = match mode.golat_args {
                None => Command::new(&bench),
                Some(extra) => {
                    let mut c = Command::new(&golat);
                    c.args(["record", "--json"]).args(extra).arg("--").arg(&bench);
                    c
                }
            };
            let out = cmd.args(["-duration", &args.duration]).output().with_context(|| format!("running {}", mode.name))?;
            if !out.status.success() {
                bail!("{} failed: {}", mode.name, String::from_utf8_lossy(&out.stderr));
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let w = workload_line(&stdout).with_context(|| format!("{}: no workload output", mode.name))?;
            let phase_s = w["phase_ns"].as_f64().unwrap_or(1e9) / 1e9;
            for part in PARTS {
                rates.entry(mi).or_default().entry(part).or_default().push(w[part].as_f64().unwrap_or(0.0) / phase_s);
            }
            for line in stdout.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                if v["type"] == "probe_programs" {
                    for p in v["data"]["programs"].as_array().into_iter().flatten() {
                        let e = progs.entry(mi).or_default().entry(p["name"].as_str().unwrap_or("?").to_owned()).or_default();
                        e.0 += p["run_count"].as_u64().unwrap_or(0);
                        e.1 += p["run_time_ns"].as_u64().unwrap_or(0);
                    }
                }
            }
            eprintln!("xtask: rep {} {}: {}", rep + 1, mode.name, stdout.lines().find(|l| l.contains("pingpong_ops")).unwrap_or(""));
        }
    }
    if let Some(old) = old_stats {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", old.trim());
    }

    println!();
    println!("throughput, median of {} runs (ops/s), and ratio to the unwatched runs", args.reps);
    println!("{:<32} {:>14} {:>14} {:>14} {:>10}", "mode", PARTS[0], PARTS[1], PARTS[2], "geo ratio");
    let base: Vec<f64> = PARTS.iter().map(|p| median(&mut rates[&0][p].clone())).collect();
    for (mi, mode) in MODES.iter().enumerate() {
        let meds: Vec<f64> = PARTS.iter().map(|p| median(&mut rates[&mi][p].clone())).collect();
        let ratios: Vec<f64> = meds.iter().zip(&base).map(|(m, b)| if *b > 0.0 { m / b } else { 0.0 }).collect();
        let geo = ratios.iter().map(|r| r.max(1e-9).ln()).sum::<f64>() / ratios.len() as f64;
        let cell = |i: usize| format!("{:.0} ({:.3})", meds[i], ratios[i]);
        println!("{:<32} {:>14} {:>14} {:>14} {:>10.3}", mode.name, cell(0), cell(1), cell(2), geo.exp());
    }
    println!();
    println!("BPF program cost (kernel.bpf_stats_enabled; excludes the uprobe trap itself)");
    println!("{:<32} {:<22} {:>12} {:>10}", "mode", "program", "runs", "ns/run");
    for (mi, mode) in MODES.iter().enumerate() {
        for (name, (runs, ns)) in progs.get(&mi).into_iter().flatten() {
            if *runs > 0 {
                println!("{:<32} {:<22} {:>12} {:>10}", mode.name, name, runs, ns / runs);
            }
        }
    }
    Ok(())
}
