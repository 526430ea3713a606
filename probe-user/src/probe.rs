//! The loaded eBPF object: loads it with load-time globals, attaches the scheduler
//! tracepoints once, attaches uprobes once per Go binary, and adds/removes watched processes.

use std::{
    collections::{HashMap as StdHashMap, HashSet},
    path::Path,
};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{
        BtfTracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
    util::nr_cpus,
};
use probe_common::{
    BinaryConfig, ErrorCounter, Exemplar, GKey, Hist, HistKey, HistKind, ProcConfig, ProcCounters, SAMPLING_EXEMPLAR_THRESHOLD,
    SAMPLING_WINDOW_START, names::*,
};

use crate::{
    golayout, hooks,
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
    /// Go 1.x minor version.
    pub go_minor: u32,
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
    /// Where the precise goroutine probe goes, and its links while sampling is on.
    sched_hook: Option<hooks::Hook>,
    sched_links: Vec<UProbeLinkId>,
    sched_program: &'static str,
    /// Since when no watched process uses it (see `set_binary_linger`).
    idle_since: Option<std::time::Instant>,
    attach_path: std::path::PathBuf,
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
    binary_linger: std::time::Duration,
    /// Program put on the precise source's sites (an empty one for calibration).
    sched_program: &'static str,
    exemplars: Option<RingBuf<MapData>>,
    exec_events: Option<RingBuf<MapData>>,
    precise_on: bool,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    binaries: StdHashMap<(u64, u64), Binary>,
    pid_binary: StdHashMap<u32, (u64, u64)>,
    next_binary_id: u32,
    ncpus: usize,
    max_procs: usize,
}


impl Probe {
    /// Loads the programs and attaches the scheduler tracepoints.
    pub fn load(task: TaskOffsets, exemplar_threshold_ns: u64) -> Result<Probe, ProbeError> {
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
            (PROG_SCHED_EXEC, "sched_process_exec"),
        ] {
            let p: &mut BtfTracePoint = program_mut(&mut ebpf, name)?;
            p.load(tracepoint, &btf).map_err(|source| ProbeError::Program { name, source })?;
            p.attach().map_err(|source| ProbeError::Program { name, source })?;
        }
        let ncpus = nr_cpus().map_err(|(p, e)| ProbeError::Cpus(format!("{p}: {e}")))?;
        {
            let mut sampling: Array<&mut MapData, u64> = Array::try_from(ebpf.map_mut(MAP_SAMPLING).ok_or(ProbeError::Missing(MAP_SAMPLING))?)
                .map_err(|source| ProbeError::Map { name: MAP_SAMPLING, source })?;
            sampling
                .set(SAMPLING_EXEMPLAR_THRESHOLD, exemplar_threshold_ns, 0)
                .map_err(|source| ProbeError::Map { name: MAP_SAMPLING, source })?;
        }
        let exemplars = RingBuf::try_from(ebpf.take_map(MAP_EXEMPLARS).ok_or(ProbeError::Missing(MAP_EXEMPLARS))?)
            .map_err(|source| ProbeError::Map { name: MAP_EXEMPLARS, source })?;
        let exec_events = RingBuf::try_from(ebpf.take_map(MAP_EXEC_EVENTS).ok_or(ProbeError::Missing(MAP_EXEC_EVENTS))?)
            .map_err(|source| ProbeError::Map { name: MAP_EXEC_EVENTS, source })?;
        Ok(Probe {
            ebpf,
            binary_linger: std::time::Duration::ZERO,
            sched_program: PROG_CASGSTATUS,
            exemplars: Some(exemplars),
            exec_events: Some(exec_events),
            precise_on: false,
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
        binary.idle_since = None;
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
        let plan = hooks::plan(&bin).map_err(|e| match e {
            hooks::PlanError::UnsupportedGo { version } => AttachError::UnsupportedGo { pid, comm: comm.clone(), version },
            hooks::PlanError::Hook { function, source } => AttachError::Hook { pid, comm: comm.clone(), function, detail: source.to_string() },
        })?;
        if let Some(w) = &plan.clock_warning {
            log::warn!("pid {pid}: {w}");
        }
        let id = self.next_binary_id;
        let hook_err = |function: &'static str, detail: String| AttachError::Hook { pid, comm: comm.clone(), function, detail };

        let mut binaries: HashMap<&mut MapData, u32, BinaryConfig> = HashMap::try_from(
            self.ebpf.map_mut(MAP_BINARIES).ok_or_else(|| hook_err("BINARIES map", "missing".into()))?,
        )
        .map_err(|e| hook_err("BINARIES map", e.to_string()))?;
        binaries
            .insert(id, plan.config, 0)
            .map_err(|source| AttachError::MapFull { pid, map: MAP_BINARIES, source })?;

        let mut links = Vec::new();
        let mut failure = None;
        'outer: for hook in &plan.hooks {
            let p: &mut UProbe = match program_mut(&mut self.ebpf, hook.program) {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(hook_err(hook.function, e.to_string()));
                    break;
                }
            };
            for site in &hook.sites {
                let point = UProbeAttachPoint {
                    location: UProbeAttachLocation::AbsoluteOffset(site.file_offset),
                    cookie: Some(u64::from(id) | site.cookie_bits),
                };
                match p.attach(point, attach_path, UProbeScope::AllProcesses) {
                    Ok(link) => links.push((hook.program, link)),
                    Err(e) => {
                        failure = Some(if crate::target::exists(pid) {
                            hook_err(hook.function, format!("{e} (file offset {:#x})", site.file_offset))
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
            info: BinaryInfo {
                go_minor: bin.build_info().go_version.minor,
                go_version: plan.go_version,
                stripped: bin.is_stripped(),
                pie: bin.is_pie(),
                exact_pause_clock: plan.exact_pause_clock,
            },
            links,
            sched_hook: plan.sched_hook.clone(),
            sched_links: Vec::new(),
            sched_program: PROG_CASGSTATUS,
            idle_since: None,
            attach_path: attach_path.to_path_buf(),
            pids: HashSet::new(),
        };
        self.next_binary_id += 1;
        if let Some(e) = failure {
            self.release_binary(binary);
            return Err(e);
        }
        for w in &plan.warnings {
            log::warn!("pid {pid}: {w}");
        }
        let mut binary = binary;
        if self.precise_on {
            if let Err(e) = attach_sched(&mut self.ebpf, &mut binary, self.sched_program) {
                log::warn!("pid {pid}: precise goroutine source: {e}");
            }
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
        // Per-thread entries of threads that no longer exist (a dying thread can still be
        // switched in once after its exit tracepoint ran).
        let dead = |tid: &u32| !std::path::Path::new(&format!("/proc/{tid}")).exists();
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_THREAD_LAST_RUNQ).map(HashMap::<_, u32, probe_common::RunqSpan>::try_from) {
            let stale: Vec<u32> = m.keys().filter_map(Result::ok).filter(dead).collect();
            for k in stale {
                let _ = m.remove(&k);
            }
        }
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_THREAD_WAKE).map(HashMap::<_, u32, u64>::try_from) {
            let stale: Vec<u32> = m.keys().filter_map(Result::ok).filter(dead).collect();
            for k in stale {
                let _ = m.remove(&k);
            }
        }
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_RUNNABLE_SINCE).map(HashMap::<_, GKey, u64>::try_from) {
            let stale: Vec<GKey> = m.keys().filter_map(Result::ok).filter(|k| k.tgid == pid).collect();
            for k in stale {
                let _ = m.remove(&k);
            }
        }
        if let Some(Ok(mut m)) = self.ebpf.map_mut(MAP_HISTS).map(PerCpuHashMap::<_, HistKey, Hist>::try_from) {
            for kind in HistKind::ALL {
                let _ = m.remove(&HistKey { tgid: pid, kind: kind as u32 });
            }
        }
    }

    /// Turns the precise goroutine source (the `casgstatus` uprobe) on or off for every
    /// attached binary. Turning it on starts a new sampling window: waits that began before it
    /// are not counted. Returns one message per binary it could not attach to.
    pub fn set_precise(&mut self, on: bool) -> Vec<String> {
        if on == self.precise_on {
            return Vec::new();
        }
        self.precise_on = on;
        let mut problems = Vec::new();
        if on {
            if let Err(e) = self.set_sampling(SAMPLING_WINDOW_START, monotonic_ns()) {
                problems.push(e.to_string());
            }
        }
        let Probe { ebpf, binaries, sched_program, .. } = self;
        for binary in binaries.values_mut() {
            if on {
                if let Err(e) = attach_sched(ebpf, binary, sched_program) {
                    problems.push(format!("{}: {e}", binary.attach_path.display()));
                }
            } else {
                detach_sched(ebpf, binary);
            }
        }
        problems
    }

    /// Benchmarks only: put an empty program where the precise source's goes, to measure
    /// the bare cost of the uprobe traps.
    pub fn use_empty_sched_program(&mut self) {
        self.sched_program = PROG_CALIB_NOOP;
    }

    pub fn precise_on(&self) -> bool {
        self.precise_on
    }

    fn set_sampling(&mut self, index: u32, value: u64) -> Result<(), ProbeError> {
        let mut sampling: Array<&mut MapData, u64> = Array::try_from(self.ebpf.map_mut(MAP_SAMPLING).ok_or(ProbeError::Missing(MAP_SAMPLING))?)
            .map_err(|source| ProbeError::Map { name: MAP_SAMPLING, source })?;
        sampling.set(index, value, 0).map_err(|source| ProbeError::Map { name: MAP_SAMPLING, source })
    }

    /// The exec ring buffer, for the agent to wait on (`AsyncFd`) and drain with
    /// [`drain_execs`]. Taken once.
    pub fn take_exec_events(&mut self) -> Option<RingBuf<MapData>> {
        self.exec_events.take()
    }

    /// Entries in the maps that hold per-process, per-thread and per-goroutine state (for
    /// the agent's self-metrics: after every watched process is gone they must drain).
    pub fn map_entries(&self) -> Vec<(&'static str, usize)> {
        fn hash<K: aya::Pod, V: aya::Pod>(ebpf: &Ebpf, name: &'static str) -> (&'static str, usize) {
            let n = ebpf.map(name).and_then(|m| HashMap::<_, K, V>::try_from(m).ok()).map_or(0, |h| h.keys().count());
            (name, n)
        }
        fn per_cpu<K: aya::Pod, V: aya::Pod>(ebpf: &Ebpf, name: &'static str) -> (&'static str, usize) {
            let n = ebpf.map(name).and_then(|m| PerCpuHashMap::<_, K, V>::try_from(m).ok()).map_or(0, |h| h.keys().count());
            (name, n)
        }
        let e = &self.ebpf;
        vec![
            hash::<u32, ProcConfig>(e, MAP_WATCHED),
            hash::<u32, BinaryConfig>(e, MAP_BINARIES),
            per_cpu::<HistKey, Hist>(e, MAP_HISTS),
            per_cpu::<u32, ProcCounters>(e, MAP_PROC_COUNTERS),
            hash::<u32, probe_common::StwState>(e, MAP_STW_STATE),
            hash::<u32, u64>(e, MAP_THREAD_WAKE),
            hash::<u32, probe_common::RunqSpan>(e, MAP_THREAD_LAST_RUNQ),
            hash::<GKey, u64>(e, MAP_RUNNABLE_SINCE),
        ]
    }

    /// Number of binaries with uprobes attached, and of uprobe links.
    pub fn attachments(&self) -> (usize, usize) {
        (self.binaries.len(), self.binaries.values().map(|b| b.links.len() + b.sched_links.len()).sum())
    }

    /// Exemplars the kernel queued since the last call.
    pub fn drain_exemplars(&mut self) -> Vec<Exemplar> {
        let mut out = Vec::new();
        if let Some(rb) = self.exemplars.as_mut() {
            while let Some(item) = rb.next() {
                if item.len() >= std::mem::size_of::<Exemplar>() {
                    // SAFETY: the kernel wrote an Exemplar (repr(C), plain integers); read
                    // unaligned from the ring buffer's bytes.
                    out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Exemplar>()) });
                }
            }
        }
        out
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
                if self.binary_linger.is_zero() {
                    self.detach_binary(key);
                } else if let Some(b) = self.binaries.get_mut(&key) {
                    b.idle_since = Some(std::time::Instant::now());
                }
            }
        }
    }

    /// Keep a binary's uprobes this long after its last watched process exits, so that a
    /// binary started over and over (cron jobs, CLI tools, restarts) is not re-read and
    /// re-attached each time. Zero: detach at once.
    pub fn set_binary_linger(&mut self, d: std::time::Duration) {
        self.binary_linger = d;
    }

    /// Detaches binaries that have had no watched process for longer than the linger time.
    pub fn detach_idle_binaries(&mut self) {
        let linger = self.binary_linger;
        let idle: Vec<(u64, u64)> = self
            .binaries
            .iter()
            .filter(|(_, b)| b.pids.is_empty() && b.idle_since.is_some_and(|t| t.elapsed() >= linger))
            .map(|(k, _)| *k)
            .collect();
        for key in idle {
            self.detach_binary(key);
        }
    }

    fn detach_binary(&mut self, key: (u64, u64)) {
        if let Some(binary) = self.binaries.remove(&key) {
            self.release_binary(binary);
        }
    }

    fn release_binary(&mut self, mut binary: Binary) {
        detach_sched(&mut self.ebpf, &mut binary);
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
            c.goroutine_wait_ns += v.goroutine_wait_ns;
            c.goroutine_cpu_wait_ns += v.goroutine_cpu_wait_ns;
            c.goroutines_created += v.goroutines_created;
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

fn attach_sched(ebpf: &mut Ebpf, binary: &mut Binary, program: &'static str) -> Result<(), String> {
    let Some(hook) = binary.sched_hook.clone() else { return Ok(()) };
    if !binary.sched_links.is_empty() {
        return Ok(());
    }
    binary.sched_program = program;
    let p: &mut UProbe = program_mut(ebpf, program).map_err(|e| e.to_string())?;
    for site in &hook.sites {
        let point = UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(site.file_offset),
            cookie: Some(u64::from(binary.id)),
        };
        let link = p.attach(point, &binary.attach_path, UProbeScope::AllProcesses).map_err(|e| e.to_string())?;
        binary.sched_links.push(link);
    }
    Ok(())
}

fn detach_sched(ebpf: &mut Ebpf, binary: &mut Binary) {
    if binary.sched_links.is_empty() {
        return;
    }
    if let Ok(p) = program_mut::<UProbe>(ebpf, binary.sched_program) {
        for link in binary.sched_links.drain(..) {
            if let Err(e) = p.detach(link) {
                log::warn!("detaching {}: {e}", binary.sched_program);
            }
        }
    }
}

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns` and of Go's `nanotime`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pids (tgids) in an exec ring buffer batch.
pub fn drain_execs(rb: &mut RingBuf<MapData>) -> Vec<probe_common::ExecEvent> {
    let mut out = Vec::new();
    while let Some(item) = rb.next() {
        if item.len() >= std::mem::size_of::<probe_common::ExecEvent>() {
            // SAFETY: the kernel wrote an ExecEvent (repr(C) integers); unaligned read.
            out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<probe_common::ExecEvent>()) });
        }
    }
    out
}
