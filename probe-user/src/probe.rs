//! The loaded eBPF object: loads it with load-time globals, attaches the scheduler
//! tracepoints once, attaches uprobes once per Go binary, and adds/removes watched processes.

use std::{
    collections::{HashMap as StdHashMap, HashSet},
    path::Path,
};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues},
    programs::{
        BtfTracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
    util::nr_cpus,
};
use probe_common::{
    BinaryConfig, CLOCK_ROLE_MARK_TERM_END, CLOCK_ROLE_PAUSE_BEGIN, CLOCK_ROLE_SHIFT, ErrorCounter, Hist, HistKey, HistKind, ProcConfig, ProcCounters, StwAbi,
    names::*,
};

use crate::{
    golayout,
    system::TaskOffsets,
    target::Process,
};

/// The eBPF object built by build.rs from the probe-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/golat"));

/// Why loading or a global operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF program {name}: {source}")]
    Program { name: &'static str, source: aya::programs::ProgramError },
    #[error("eBPF map {name}: {source}")]
    Map { name: &'static str, source: aya::maps::MapError },
    #[error("eBPF object has no {0}")]
    Missing(&'static str),
    #[error("reading kernel BTF: {0}")]
    Btf(#[from] aya::BtfError),
    #[error("cannot count CPUs: {0}")]
    Cpus(String),
}

/// Why one process could not be watched. Other processes are unaffected.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("pid {pid}: process exited")]
    Gone { pid: u32 },
    #[error("pid {pid} ({comm}): {source}")]
    Binary { pid: u32, comm: String, source: gobin::Error },
    #[error("pid {pid} ({comm}): Go {version} is not supported (golat supports go{}.{} to go{}.{})", golayout::MIN_GO.0, golayout::MIN_GO.1, golayout::MAX_GO.0, golayout::MAX_GO.1)]
    UnsupportedGo { pid: u32, comm: String, version: String },
    #[error("pid {pid} ({comm}): cannot attach to {function}: {detail}")]
    Hook { pid: u32, comm: String, function: &'static str, detail: String },
    #[error("pid {pid}: cannot add to map {map}: {source}")]
    MapFull { pid: u32, map: &'static str, source: aya::maps::MapError },
    #[error("too many processes watched (limit {limit})")]
    Limit { limit: usize },
}

impl AttachError {
    /// Short label for counting failures by reason (reports and metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            AttachError::Gone { .. } => "process_exited",
            AttachError::Binary { source: gobin::Error::NotGo, .. } => "not_go",
            AttachError::Binary { source: gobin::Error::UnsupportedGoVersion { .. }, .. }
            | AttachError::UnsupportedGo { .. } => "unsupported_go_version",
            AttachError::Binary { .. } => "binary_unreadable",
            AttachError::Hook { .. } => "hook_failed",
            AttachError::MapFull { .. } => "map_full",
            AttachError::Limit { .. } => "limit",
        }
    }
}

/// What golat learnt about a binary when it attached to it.
#[derive(Debug, Clone)]
pub struct BinaryInfo {
    pub go_version: String,
    pub stripped: bool,
    pub pie: bool,
    /// Pause start/end come from the runtime's own `nanotime()` values (false: from the
    /// probes' clock, see docs/design.md).
    pub exact_pause_clock: bool,
}

struct Binary {
    id: u32,
    info: BinaryInfo,
    links: Vec<(&'static str, UProbeLinkId)>,
    pids: HashSet<u32>,
}

/// Kernel-counted cost of one eBPF program.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgramStats {
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// Cumulative kernel-side numbers of one process (sums over CPUs).
#[derive(Debug, Clone)]
pub struct ProcSnapshot {
    pub hists: StdHashMap<u32, Hist>,
    pub counters: ProcCounters,
}

pub struct Probe {
    ebpf: Ebpf,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    binaries: StdHashMap<(u64, u64), Binary>,
    pid_binary: StdHashMap<u32, (u64, u64)>,
    next_binary_id: u32,
    ncpus: usize,
    max_procs: usize,
}


impl Probe {
    /// Loads the programs and attaches the scheduler tracepoints.
    pub fn load(task: TaskOffsets) -> Result<Probe, ProbeError> {
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_TASK_PID_OFF, &task.pid, true)
            .override_global(GLOBAL_TASK_TGID_OFF, &task.tgid, true)
            .load(EBPF_OBJECT)?;
        // The programs log only on rare error paths; records show with -v/-vv.
        let logger = aya_log::EbpfLogger::init(&mut ebpf)
            .inspect_err(|e| log::debug!("eBPF logger not initialised: {e}"))
            .ok();
        for name in UPROBE_PROGRAMS {
            let p: &mut UProbe = program_mut(&mut ebpf, name)?;
            p.load().map_err(|source| ProbeError::Program { name, source })?;
        }
        let btf = Btf::from_sys_fs()?;
        for (name, tracepoint) in [
            (PROG_SCHED_WAKEUP, "sched_wakeup"),
            (PROG_SCHED_WAKEUP_NEW, "sched_wakeup_new"),
            (PROG_SCHED_SWITCH, "sched_switch"),
            (PROG_SCHED_EXIT, "sched_process_exit"),
        ] {
            let p: &mut BtfTracePoint = program_mut(&mut ebpf, name)?;
            p.load(tracepoint, &btf).map_err(|source| ProbeError::Program { name, source })?;
            p.attach().map_err(|source| ProbeError::Program { name, source })?;
        }
        let ncpus = nr_cpus().map_err(|(p, e)| ProbeError::Cpus(format!("{p}: {e}")))?;
        Ok(Probe {
            ebpf,
            logger,
            binaries: StdHashMap::new(),
            pid_binary: StdHashMap::new(),
            next_binary_id: 1,
            ncpus,
            max_procs: 4096,
        })
    }

    /// Forwards the eBPF programs' log records (error paths only) to the `log` crate.
    pub fn flush_logs(&mut self) {
        if let Some(l) = self.logger.as_mut() {
            l.flush();
        }
    }

    /// Attaches to `proc`'s binary (once per binary) and starts watching the process.
    /// `attach_path` is the file the uprobes go on: `/proc/PID/exe` for a running process.
    pub fn watch(&mut self, proc: &Process, attach_path: &Path) -> Result<BinaryInfo, AttachError> {
        if self.pid_binary.contains_key(&proc.pid) {
            let key = self.pid_binary[&proc.pid];
            return Ok(self.binaries[&key].info.clone());
        }
        if self.pid_binary.len() >= self.max_procs {
            return Err(AttachError::Limit { limit: self.max_procs });
        }
        let key = proc.binary_key;
        if !self.binaries.contains_key(&key) {
            let binary = self.attach_binary(proc, attach_path)?;
            self.binaries.insert(key, binary);
        }
        let result = self.add_pid(proc.pid);
        let binary = self.binaries.get_mut(&key).expect("inserted above");
        match result {
            Ok(()) => {
                binary.pids.insert(proc.pid);
                self.pid_binary.insert(proc.pid, key);
                Ok(binary.info.clone())
            }
            Err(e) => {
                if binary.pids.is_empty() {
                    self.detach_binary(key);
                }
                Err(e)
            }
        }
    }

    fn attach_binary(&mut self, proc: &Process, attach_path: &Path) -> Result<Binary, AttachError> {
        let (pid, comm) = (proc.pid, proc.comm.clone());
        let bin = gobin::GoBinary::open(attach_path).map_err(|source| match source {
            gobin::Error::Io { .. } if !crate::target::exists(pid) => AttachError::Gone { pid },
            source => AttachError::Binary { pid, comm: comm.clone(), source },
        })?;
        let v = bin.build_info().go_version;
        let go_version = bin.build_info().go_version_raw.clone();
        let stw = golayout::stw_layout(v.major, v.minor)
            .ok_or_else(|| AttachError::UnsupportedGo { pid, comm: comm.clone(), version: go_version.clone() })?;
        let id = self.next_binary_id;
        let hook_err = |function: &'static str, detail: String| AttachError::Hook { pid, comm: comm.clone(), function, detail };
        let resolve = |name: &'static str| bin.function(name).map_err(|e| hook_err(name, e.to_string()));

        // Where each program goes: (program, function, [(file offset, attach cookie)]).
        let cookie = u64::from(id);
        let mut plan: Vec<(&'static str, &'static str, Vec<(u64, u64)>)> = Vec::new();
        let start = resolve(golayout::FN_START_THE_WORLD)?;
        let rets = bin
            .return_sites(&start)
            .map_err(|e| hook_err(golayout::FN_START_THE_WORLD, e.to_string()))?;
        plan.push((PROG_STW_START_ENTRY, golayout::FN_START_THE_WORLD, vec![(start.file_offset, cookie)]));
        plan.push((PROG_STW_START_RET, golayout::FN_START_THE_WORLD, rets.iter().map(|s| (s.file_offset, cookie)).collect()));
        let mark = resolve(golayout::FN_GC_MARK_TERMINATION)?;
        plan.push((PROG_GC_MARK_TERM_ENTRY, golayout::FN_GC_MARK_TERMINATION, vec![(mark.file_offset, cookie)]));
        let mut config = BinaryConfig { stw_abi: stw.abi as u32, _pad: 0, other_caller_lo: 0, other_caller_hi: 0 };
        if stw.probe_stop {
            let stop = resolve(golayout::FN_STOP_THE_WORLD)?;
            plan.push((PROG_STW_STOP_ENTRY, golayout::FN_STOP_THE_WORLD, vec![(stop.file_offset, cookie)]));
            if stw.abi == StwAbi::NoReason {
                let closure = resolve(golayout::FN_STOP_THE_WORLD_CLOSURE)?;
                config.other_caller_lo = closure.address as i64 - stop.address as i64;
                config.other_caller_hi = (closure.address + closure.size) as i64 - stop.address as i64;
            }
        }
        let mut exact_clock = true;
        if stw.clock_probes {
            match clock_sites(&bin) {
                Ok(sites) => {
                    let with_cookie = |role: u64, sites: Vec<u64>| -> Vec<(u64, u64)> {
                        sites.into_iter().map(|o| (o, cookie | (role << CLOCK_ROLE_SHIFT))).collect()
                    };
                    let mut all = with_cookie(CLOCK_ROLE_PAUSE_BEGIN, sites.pause_begin);
                    all.extend(with_cookie(CLOCK_ROLE_MARK_TERM_END, vec![sites.mark_term_end]));
                    plan.push((PROG_GC_CLOCK, golayout::FN_NANOTIME, all));
                }
                Err(e) => {
                    // Still usable: pauses are then timed from the probes' own clock, which
                    // misses the uprobe's trap latency at the start of each pause.
                    log::warn!("pid {pid}: {e}; GC pause times will be approximate");
                    exact_clock = false;
                }
            }
        }

        let mut binaries: HashMap<&mut MapData, u32, BinaryConfig> = HashMap::try_from(
            self.ebpf.map_mut(MAP_BINARIES).ok_or_else(|| hook_err("BINARIES map", "missing".into()))?,
        )
        .map_err(|e| hook_err("BINARIES map", e.to_string()))?;
        binaries
            .insert(id, config, 0)
            .map_err(|source| AttachError::MapFull { pid, map: MAP_BINARIES, source })?;

        let mut links = Vec::new();
        let mut failure = None;
        'outer: for (prog, function, offsets) in &plan {
            let p: &mut UProbe = match program_mut(&mut self.ebpf, prog) {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(hook_err(function, e.to_string()));
                    break;
                }
            };
            for &(offset, cookie) in offsets {
                let point = UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(offset), cookie: Some(cookie) };
                match p.attach(point, attach_path, UProbeScope::AllProcesses) {
                    Ok(link) => links.push((*prog, link)),
                    Err(e) => {
                        failure = Some(if crate::target::exists(pid) {
                            hook_err(function, format!("{e} (file offset {offset:#x})"))
                        } else {
                            AttachError::Gone { pid }
                        });
                        break 'outer;
                    }
                }
            }
        }
        let binary = Binary {
            id,
            info: BinaryInfo { go_version, stripped: bin.is_stripped(), pie: bin.is_pie(), exact_pause_clock: exact_clock },
            links,
            pids: HashSet::new(),
        };
        self.next_binary_id += 1;
        if let Some(e) = failure {
            self.release_binary(binary);
            return Err(e);
        }
        log::debug!("attached {} uprobes to {} (binary id {id})", binary.links.len(), attach_path.display());
        Ok(binary)
    }

    /// Creates the process's map entries (zeroed), then marks it watched.
    fn add_pid(&mut self, pid: u32) -> Result<(), AttachError> {
        let ncpus = self.ncpus;
        let map_err = |map: &'static str| move |source| AttachError::MapFull { pid, map, source };
        {
            let mut hists: PerCpuHashMap<&mut MapData, HistKey, Hist> =
                PerCpuHashMap::try_from(self.ebpf.map_mut(MAP_HISTS).expect("HISTS map")).map_err(map_err(MAP_HISTS))?;
            for kind in HistKind::ALL {
                let zero = PerCpuValues::try_from(vec![Hist::ZERO; ncpus]).expect("non-empty");
                hists.insert(HistKey { tgid: pid, kind: kind as u32 }, zero, 0).map_err(map_err(MAP_HISTS))?;
            }
        }
        {
            let mut counters: PerCpuHashMap<&mut MapData, u32, ProcCounters> =
                PerCpuHashMap::try_from(self.ebpf.map_mut(MAP_PROC_COUNTERS).expect("PROC_COUNTERS map"))
                    .map_err(map_err(MAP_PROC_COUNTERS))?;
            let zero = PerCpuValues::try_from(vec![ProcCounters::default(); ncpus]).expect("non-empty");
            counters.insert(pid, zero, 0).map_err(map_err(MAP_PROC_COUNTERS))?;
        }
        let mut watched: HashMap<&mut MapData, u32, ProcConfig> =
            HashMap::try_from(self.ebpf.map_mut(MAP_WATCHED).expect("WATCHED map")).map_err(map_err(MAP_WATCHED))?;
        let res = watched.insert(pid, ProcConfig::default(), 0).map_err(map_err(MAP_WATCHED));
        if res.is_err() {
            self.remove_pid_entries(pid);
        }
        res
    }

    fn remove_pid_entries(&mut self, pid: u32) {
        // Errors here mean the entry was never created; nothing to free.
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_WATCHED).map(HashMap::<_, u32, ProcConfig>::try_from) {
            let _ = m.remove(&pid);
        }
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_STW_STATE).map(HashMap::<_, u32, probe_common::StwState>::try_from) {
            let _ = m.remove(&pid);
        }
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_PROC_COUNTERS).map(PerCpuHashMap::<_, u32, ProcCounters>::try_from) {
            let _ = m.remove(&pid);
        }
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_HISTS).map(PerCpuHashMap::<_, HistKey, Hist>::try_from) {
            for kind in HistKind::ALL {
                let _ = m.remove(&HistKey { tgid: pid, kind: kind as u32 });
            }
        }
    }

    /// Stops watching a process and frees its kernel state; detaches its binary's uprobes when
    /// no other watched process uses that binary.
    pub fn unwatch(&mut self, pid: u32) {
        self.remove_pid_entries(pid);
        if let Some(key) = self.pid_binary.remove(&pid) {
            let empty = self.binaries.get_mut(&key).map(|b| {
                b.pids.remove(&pid);
                b.pids.is_empty()
            });
            if empty == Some(true) {
                self.detach_binary(key);
            }
        }
    }

    fn detach_binary(&mut self, key: (u64, u64)) {
        if let Some(binary) = self.binaries.remove(&key) {
            self.release_binary(binary);
        }
    }

    fn release_binary(&mut self, binary: Binary) {
        for (prog, link) in binary.links {
            if let Ok(p) = program_mut::<UProbe>(&mut self.ebpf, prog) {
                if let Err(e) = p.detach(link) {
                    log::warn!("detaching {prog}: {e}");
                }
            }
        }
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_BINARIES).map(HashMap::<_, u32, BinaryConfig>::try_from) {
            let _ = m.remove(&binary.id);
        }
    }

    /// Cumulative numbers of one watched process.
    pub fn snapshot(&self, pid: u32) -> Result<ProcSnapshot, ProbeError> {
        let hists: PerCpuHashMap<&MapData, HistKey, Hist> =
            PerCpuHashMap::try_from(self.ebpf.map(MAP_HISTS).ok_or(ProbeError::Missing(MAP_HISTS))?)
                .map_err(|source| ProbeError::Map { name: MAP_HISTS, source })?;
        let mut out = StdHashMap::new();
        for kind in HistKind::ALL {
            let per_cpu = hists
                .get(&HistKey { tgid: pid, kind: kind as u32 }, 0)
                .map_err(|source| ProbeError::Map { name: MAP_HISTS, source })?;
            let mut sum = Hist::ZERO;
            for h in per_cpu.iter() {
                sum.count += h.count;
                sum.sum_ns += h.sum_ns;
                sum.max_ns = sum.max_ns.max(h.max_ns);
                for (a, b) in sum.buckets.iter_mut().zip(h.buckets.iter()) {
                    *a += *b;
                }
            }
            out.insert(kind as u32, sum);
        }
        let counters: PerCpuHashMap<&MapData, u32, ProcCounters> = PerCpuHashMap::try_from(
            self.ebpf.map(MAP_PROC_COUNTERS).ok_or(ProbeError::Missing(MAP_PROC_COUNTERS))?,
        )
        .map_err(|source| ProbeError::Map { name: MAP_PROC_COUNTERS, source })?;
        let per_cpu = counters.get(&pid, 0).map_err(|source| ProbeError::Map { name: MAP_PROC_COUNTERS, source })?;
        let mut c = ProcCounters::default();
        for v in per_cpu.iter() {
            c.gc_cycles += v.gc_cycles;
            c.stw_unpaired += v.stw_unpaired;
        }
        Ok(ProcSnapshot { hists: out, counters: c })
    }

    /// Global kernel-side error counters (summed over CPUs), by name.
    pub fn errors(&self) -> Result<Vec<(&'static str, u64)>, ProbeError> {
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map(MAP_ERRORS).ok_or(ProbeError::Missing(MAP_ERRORS))?)
                .map_err(|source| ProbeError::Map { name: MAP_ERRORS, source })?;
        ErrorCounter::ALL
            .iter()
            .map(|e| {
                let v = arr.get(&(*e as u32), 0).map_err(|source| ProbeError::Map { name: MAP_ERRORS, source })?;
                Ok((e.name(), v.iter().sum()))
            })
            .collect()
    }

    /// Cumulative run count and run time of each program (counted by the kernel only while
    /// the sysctl `kernel.bpf_stats_enabled` is 1).
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        self.ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some(ProgramStats { name: name.to_owned(), run_count: info.run_count(), run_time_ns: info.run_time().as_nanos() as u64 })
            })
            .collect()
    }
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(ProbeError::Missing(name))?
        .try_into()
        .map_err(|source| ProbeError::Program { name, source })
}


/// File offsets of the `gc_clock` probes for Go <= 1.21 (see [`golayout::FN_NANOTIME`]).
struct ClockSites {
    pause_begin: Vec<u64>,
    mark_term_end: u64,
}

fn clock_sites(bin: &gobin::GoBinary) -> Result<ClockSites, gobin::Error> {
    let nanotime = bin.function(golayout::FN_NANOTIME)?;
    let mut pause_begin = Vec::new();
    for caller in [golayout::FN_GC_START, golayout::FN_GC_MARK_DONE] {
        let sites = bin.call_return_sites(&bin.function(caller)?, &nanotime)?;
        if sites.len() != 1 {
            return Err(gobin::Error::Unsupported {
                what: format!("{caller} calls {} {} times, expected once", golayout::FN_NANOTIME, sites.len()),
            });
        }
        pause_begin.push(sites[0].file_offset);
    }
    let term = bin.call_return_sites(&bin.function(golayout::FN_GC_MARK_TERMINATION)?, &nanotime)?;
    let last = term.last().map(|s| s.file_offset).ok_or_else(|| gobin::Error::FunctionNotFound(golayout::FN_NANOTIME.into()))?;
    Ok(ClockSites { pause_begin, mark_term_end: last })
}
