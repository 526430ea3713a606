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
    /// What to measure: `overhead` (what golat costs a Go program) or `agent` (the agent's own
    /// CPU and memory while watching 1, 10 and 50 idle Go processes).
    #[arg(default_value = "overhead")]
    pub what: String,
    /// For `agent`: how long to measure each case.
    #[arg(long, default_value_t = 30)]
    pub window_secs: u64,
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
    match args.what.as_str() {
        "overhead" => {}
        "agent" => return agent(args),
        other => bail!("unknown benchmark {other:?} (available: overhead, agent)"),
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

/// utime+stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let tck = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let f: Vec<String> = s.rsplit_once(')')?.1.split_whitespace().map(str::to_owned).collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / tck)
        })
        .unwrap_or(0.0)
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024
}

/// The agent's CPU (share of one core) and RSS while it watches N idle Go processes, with its
/// default configuration (10 s interval, runtime goroutine source).
fn agent(args: &BenchArgs) -> anyhow::Result<()> {
    crate::setup::run(&crate::setup::SetupArgs::default())?;
    let golat = crate::build::golat()?;
    let go = go_build::installed_go().pop().context("no Go toolchain (run `cargo xtask setup`)")?;
    let arch = GoArch::host().context("unsupported host")?;
    let idle = go_build::build(&workspace_root().join("tests/workloads/gcstw"), &go, Variant::Default, arch)?;
    let mut rows = Vec::new();
    for n in [1usize, 10, 50] {
        let mut procs: Vec<std::process::Child> = (0..n)
            .map(|_| Command::new(&idle).arg("-wait-signal").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn())
            .collect::<Result<_, _>>()
            .context("starting idle Go processes")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut agent = Command::new(&golat)
            .args(["agent", "--listen", &format!("127.0.0.1:{port}")])
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the agent")?;
        std::thread::sleep(std::time::Duration::from_secs(12));
        let (c0, t0) = (cpu_seconds(agent.id()), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_secs(args.window_secs));
        let (c1, t1) = (cpu_seconds(agent.id()), std::time::Instant::now());
        let rss = rss_bytes(agent.id());
        let _ = agent.kill();
        let _ = agent.wait();
        for p in procs.iter_mut() {
            let _ = p.kill();
            let _ = p.wait();
        }
        let share = (c1 - c0) / (t1 - t0).as_secs_f64();
        eprintln!("xtask: agent watching {n} idle Go processes: {:.3}% of a core, RSS {:.1} MB", share * 100.0, rss as f64 / 1e6);
        rows.push((n, share, rss));
    }
    println!();
    println!("agent cost with its default configuration (interval 10s, runtime goroutine source), {} s windows", args.window_secs);
    println!("{:>18} {:>16} {:>10}", "idle Go processes", "CPU (% of core)", "RSS (MB)");
    for (n, share, rss) in rows {
        println!("{n:>18} {:>16.3} {:>10.1}", share * 100.0, rss as f64 / 1e6);
    }
    Ok(())
}
