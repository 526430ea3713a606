//! `golat record`: an ad-hoc capture of given pids, or of a command golat starts itself.

use std::{
    collections::BTreeMap,
    io::Write as _,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::time::MissedTickBehavior;

use crate::{
    watch::{GoroutineSource, Watched, Window, build_record, keep_top, open_runtime_hist},
    probe::Probe,
    report::{self, AttachFailure, ProbeErrors, ProcessRecord},
    system, target,
};

/// Record GC stop-the-world pauses and OS run-queue latency of Go processes.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Process to watch (repeat for several).
    #[arg(long = "pid", value_name = "PID", required_unless_present = "command")]
    pub pids: Vec<u32>,
    /// How long to record (e.g. 10s, 1m, 500ms). Default: until every process exits or
    /// SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Length of one reporting window.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// JSON lines (`interval` and `summary` records, see docs/output.md) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where goroutine scheduling latency comes from: `runtime` (the program's own histogram,
    /// read from its memory: no overhead, 1-in-8 sampled, coarse buckets), `precise` (a uprobe
    /// on every goroutine state change, duty-cycled by --precise-duty: exact, with exemplars and
    /// the CPU-wait split, but a trap per state change while on), `both`, or `off`.
    #[arg(long, value_enum, default_value_t = GoroutineSource::Runtime)]
    pub goroutine_source: GoroutineSource,
    /// Duty cycle of the precise source, `ON/PERIOD` (e.g. `1s/10s`: on for 1 s in every
    /// 10 s) or `always`. The probe costs a trap per goroutine state change while on.
    #[arg(long, default_value = "1s/5s", value_parser = parse_duty)]
    pub precise_duty: Duty,
    /// GOMAXPROCS policy for the `signal` of each window (docs/signals.md).
    #[arg(long, value_enum, default_value_t = crate::signals::policy::Policy::Default)]
    pub policy: crate::signals::policy::Policy,
    /// Goroutine waits at least this long are reported individually (exemplars).
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub exemplar_threshold: Duration,
    /// Start this command and record it from its first instruction (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// On for `on` in every `period`; `on == period` means always.
#[derive(Debug, Clone, Copy)]
pub struct Duty {
    pub on: Duration,
    pub period: Duration,
}

impl Duty {
    pub fn always(&self) -> bool {
        self.on >= self.period
    }
}

pub fn parse_duty(s: &str) -> Result<Duty, String> {
    if s == "always" {
        let d = Duration::from_secs(1);
        return Ok(Duty { on: d, period: d });
    }
    let (on, period) = s.split_once('/').ok_or_else(|| format!("invalid duty {s:?}: use ON/PERIOD (e.g. 1s/10s) or always"))?;
    let (on, period) = (parse_duration(on)?, parse_duration(period)?);
    if on > period {
        return Err(format!("invalid duty {s:?}: ON is longer than PERIOD"));
    }
    Ok(Duty { on, period })
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("invalid duration {s:?} (examples: 10s, 500ms, 2m)"))?;
    let mult = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s, m or h)")),
    };
    let secs = v * mult;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A child started by golat, held before `exec` until its uprobes are in place.
struct HeldChild {
    child: tokio::process::Child,
    release: Option<OwnedFd>,
    path: PathBuf,
}

fn spawn_held(command: &[String]) -> anyhow::Result<HeldChild> {
    let path = which::which(&command[0]).with_context(|| format!("command not found: {}", command[0]))?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: pipe2 returned two fresh descriptors that we now own.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let rfd = read_end.as_raw_fd();
    // The child is a shell that waits on fd 3 until golat has attached (or died: EOF), then
    // execs the command in the same process, so the pid golat watches is the command's.
    // (Blocking inside pre_exec instead would deadlock: spawn waits for the exec.)
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("read -r _ <&3; exec 3<&-; exec \"$0\" \"$@\"")
        .arg(&path)
        .args(&command[1..])
        .kill_on_drop(false);
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(rfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("cannot start {}", path.display()))?;
    drop(read_end);
    Ok(HeldChild { child, release: Some(write_end), path })
}

pub async fn run(args: RecordArgs, cancel: tokio_util::sync::CancellationToken) -> anyhow::Result<i32> {
    if !args.pids.is_empty() && !args.command.is_empty() {
        bail!("give either --pid or a command after --, not both");
    }
    system::check_privileges()?;
    if let Some(w) = system::ensure_tracefs() {
        log::warn!("{w}");
    }
    let task = system::task_offsets()?;
    let threshold_ns = args.exemplar_threshold.as_nanos().min(u128::from(u64::MAX)) as u64;
    let mut probe = Probe::load(task, threshold_ns).context("cannot load the eBPF programs")?;

    // Precise goroutine sampling: when it is on, since when, and time on in this window/total.
    // The first window starts before any target is attached, so a command started by golat
    // is sampled from its first goroutine.
    let precise = args.goroutine_source.precise();
    if args.goroutine_source == GoroutineSource::EmptyProbe {
        probe.use_empty_sched_program();
    }
    let far = Duration::from_secs(u64::MAX / 4);
    let (mut sampled_window, mut sampled_total) = (Duration::ZERO, Duration::ZERO);
    let mut on_since: Option<Instant> = None;
    let mut next_toggle = Instant::now() + far;
    if precise {
        probe.set_precise(true);
        on_since = Some(Instant::now());
        next_toggle = Instant::now() + if args.precise_duty.always() { far } else { args.precise_duty.on };
    }

    let mut failures: Vec<AttachFailure> = Vec::new();
    let mut watched: Vec<Watched> = Vec::new();
    let mut held: Option<HeldChild> = None;

    let add = |probe: &mut Probe, proc: target::Process, path: PathBuf, failures: &mut Vec<AttachFailure>| -> Option<Watched> {
        match probe.watch(&proc, &path) {
            Ok(info) => {
                let first = probe.snapshot(proc.pid).ok()?;
                Some(Watched::new(proc, info, first))
            }
            Err(e) => {
                failures.push(AttachFailure { pid: Some(proc.pid), reason: e.reason().into(), message: e.to_string() });
                None
            }
        }
    };

    if args.command.is_empty() {
        for &pid in &args.pids {
            match target::Process::open(pid) {
                Ok(proc) => {
                    let path = proc.exe_link.clone();
                    if let Some(w) = add(&mut probe, proc, path, &mut failures) {
                        watched.push(w);
                    }
                }
                Err(e) => failures.push(AttachFailure {
                    pid: Some(pid),
                    reason: match e {
                        target::TargetError::NoSuchProcess(_) => "no_such_process".into(),
                        _ => "proc_unreadable".into(),
                    },
                    message: e.to_string(),
                }),
            }
        }
    } else {
        let mut h = spawn_held(&args.command)?;
        let pid = h.child.id().context("child has no pid")?;
        let proc = target::Process {
            pid,
            comm: h.path.file_name().map(|n| n.to_string_lossy().chars().take(15).collect()).unwrap_or_default(),
            exe_link: h.path.clone(),
            exe_path: h.path.to_string_lossy().into_owned(),
            binary_key: target::binary_key(&h.path).with_context(|| format!("cannot stat {}", h.path.display()))?,
        };
        match add(&mut probe, proc, h.path.clone(), &mut failures) {
            Some(mut w) => {
                w.started_by_us = true;
                watched.push(w);
            }
            None => {
                let _ = h.child.start_kill();
                let msg = failures.last().map(|f| f.message.clone()).unwrap_or_default();
                bail!("{msg}");
            }
        }
        // Let the child exec: its uprobes and map entries are in place.
        h.release.take();
        held = Some(h);
    }

    let mut stdout = std::io::stdout().lock();
    for f in &failures {
        if args.json {
            report::json_line(&mut stdout, "attach_error", f)?;
        }
        eprintln!("golat: {}", f.message);
    }
    if watched.is_empty() {
        bail!("nothing to record");
    }
    for w in &watched {
        // Tests and scripts wait for this line: the probes are in place from here on.
        eprintln!(
            "golat: recording pid {} ({}, {}{}{})",
            w.proc.pid,
            w.proc.comm,
            w.info.go_version,
            if w.info.stripped { ", stripped" } else { "" },
            if w.info.pie { ", PIE" } else { "" }
        );
    }

    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker.tick().await;
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut window_start = Instant::now();
    let mut child_status = None;
    if args.goroutine_source.runtime() {
        for w in watched.iter_mut() {
            open_runtime_hist(w);
        }
    }

    loop {
        if precise && Instant::now() >= next_toggle {
            let turn_on = !probe.precise_on();
            if !turn_on {
                if let Some(t) = on_since.take() {
                    sampled_window += t.elapsed();
                }
            }
            for p in probe.set_precise(turn_on) {
                eprintln!("golat: precise goroutine source: {p}");
            }
            if turn_on {
                on_since = Some(Instant::now());
            }
            next_toggle = if args.precise_duty.always() {
                Instant::now() + far
            } else if turn_on {
                Instant::now() + args.precise_duty.on
            } else {
                Instant::now() + (args.precise_duty.period - args.precise_duty.on)
            };
        }
        let toggle = tokio::time::sleep_until(next_toggle.into());
        let child_exit = async {
            match held.as_mut() {
                Some(h) if child_status.is_none() => h.child.wait().await.ok(),
                _ => std::future::pending().await,
            }
        };
        let mut finish = false;
        tokio::select! {
            _ = cancel.cancelled() => finish = true,
            _ = &mut deadline => finish = true,
            status = child_exit => child_status = status.or(Some(std::process::ExitStatus::default())),
            _ = ticker.tick() => {}
            _ = toggle, if precise => continue,
        }
        probe.flush_logs();
        let window = window_start.elapsed();
        window_start = Instant::now();
        if let Some(t) = on_since.as_mut() {
            sampled_window += t.elapsed();
            *t = Instant::now();
        }
        let sampled = std::mem::take(&mut sampled_window);
        sampled_total += sampled;
        for e in probe.drain_exemplars() {
            if let Some(w) = watched.iter_mut().find(|w| w.proc.pid == e.tgid) {
                keep_top(&mut w.top, e, 10);
                keep_top(&mut w.window_top, e, 10);
            }
        }
        for w in watched.iter_mut().filter(|w| !w.exited) {
            let gone = if held.is_some() { child_status.is_some() } else { !target::exists(w.proc.pid) };
            if let Some(t) = target::threads(w.proc.pid).filter(|_| !gone) {
                w.threads = t;
            }
            // The kernel entries outlive the process until unwatch, so a final read is complete.
            let throttled = if gone { w.throttled_last } else { crate::cgroup::throttled_ns(w.proc.pid) };
            let (rt_prev, rt_now) = w.read_runtime(args.goroutine_source.runtime() && !gone);
            match probe.snapshot(w.proc.pid) {
                Ok(s) => {
                    if !finish {
                        let win = Window {
                            from: &w.last,
                            to: &s,
                            duration: window,
                            sampled,
                            source: args.goroutine_source,
                            exemplars: &w.window_top,
                            throttled_ns: throttled.zip(w.throttled_last).map(|(a, b)| a.saturating_sub(b)),
                            rt: rt_prev.or(w.rt_first).zip(rt_now),
                        };
                        let mut rec = build_record(w, &win);
                        // An exited process keeps the signal of its last full window.
                        rec.signal = if gone { w.last_signal.clone() } else { Some(w.window_signal(&rec, window, args.policy)) };
                        if args.json {
                            report::json_line(&mut stdout, "interval", &rec)?;
                        }
                    }
                    w.last = s;
                    w.window_top.clear();
                    w.throttled_last = throttled;
                }
                Err(e) => log::warn!("pid {}: reading maps: {e}", w.proc.pid),
            }
            if gone {
                if args.goroutine_source.runtime() && w.rt_last.is_none() && w.rt_error.is_none() {
                    w.rt_error = Some("the process exited before the first read (the runtime source reads once per --interval)".into());
                }
                w.exited = true;
                w.ended = Some(Instant::now());
                probe.unwatch(w.proc.pid);
                if held.is_none() {
                    eprintln!("golat: pid {} ({}) exited", w.proc.pid, w.proc.comm);
                }
            }
        }
        if finish || watched.iter().all(|w| w.exited) {
            break;
        }
    }

    let errors = ProbeErrors {
        counters: probe.errors().unwrap_or_default().into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<BTreeMap<_, _>>(),
    };
    if probe.set_precise(false).is_empty() {
        if let Some(t) = on_since.take() {
            sampled_total += t.elapsed();
        }
    }
    let records: Vec<ProcessRecord> = watched.iter().map(|w| w.summary(args.goroutine_source, sampled_total)).collect();
    if args.json {
        for r in &records {
            report::json_line(&mut stdout, "summary", r)?;
        }
        report::json_line(&mut stdout, "probe_errors", &errors)?;
        report::json_line(&mut stdout, "probe_programs", &report::program_costs(&probe.program_stats()))?;
    } else {
        report::human(&mut stdout, &records, &failures, &errors)?;
    }
    stdout.flush()?;
    for w in watched.iter().filter(|w| !w.exited) {
        probe.unwatch(w.proc.pid);
    }
    // A started command that is still running keeps running: golat only observed it.
    if let Some(s) = child_status.filter(|s| !s.success()) {
        eprintln!("golat: command exited with {s}");
    }
    Ok(0)
}
