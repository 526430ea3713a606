//! `#[repr(C)]` values stored in the maps named in [`crate::names`].

use crate::hist::NUM_BUCKETS;

/// What a histogram measures. Stored as `u32` in [`HistKey::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistKind {
    /// Stop-the-world pauses made by the garbage collector (sweep and mark termination),
    /// measured the way the runtime measures `MemStats.PauseTotalNs`.
    StwGc = 0,
    /// Stop-the-world pauses for any other reason (ReadMemStats, GOMAXPROCS, profiles, ...).
    StwOther = 1,
    /// Time a thread of the process waited in the kernel run queue (wakeup or preemption
    /// until it ran again).
    OsRunq = 2,
    /// Time a goroutine spent runnable before it ran (`casgstatus` to `_Grunnable`, then
    /// `_Grunnable` to `_Grunning`): the Go scheduling latency.
    GoroutineSched = 3,
}

impl HistKind {
    pub const ALL: [HistKind; 4] = [HistKind::StwGc, HistKind::StwOther, HistKind::OsRunq, HistKind::GoroutineSched];
}

/// Key of the per-CPU histogram map: one histogram per (process, kind).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HistKey {
    pub tgid: u32,
    pub kind: u32,
}

/// Log-linear histogram of nanosecond values (see [`crate::hist`]), cumulative since the
/// process was added: counters only grow, user space computes per-window deltas.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Hist {
    pub count: u64,
    pub sum_ns: u64,
    pub max_ns: u64,
    pub buckets: [u64; NUM_BUCKETS],
}

impl Hist {
    pub const ZERO: Hist = Hist { count: 0, sum_ns: 0, max_ns: 0, buckets: [0; NUM_BUCKETS] };
}

/// Value of the watched-process map (key: tgid). Presence means "watched".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcConfig {
    /// Reserved for per-process switches; zero today.
    pub flags: u32,
    pub _pad: u32,
}

/// How a Go version passes stop/start-the-world information (see docs/design.md and the
/// layout table in probe-user).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StwAbi {
    /// Go 1.17–1.20: `stopTheWorldWithSema()` has no reason; non-GC stops are recognised by
    /// their caller (`runtime.stopTheWorld.func1`). Pause end = `startTheWorldWithSema`'s return
    /// value, or, for mark termination, the entry of `startTheWorldWithSema`.
    NoReason = 1,
    /// Go 1.21: `stopTheWorldWithSema(reason stwReason)`, reason in the first integer register.
    ReasonAtStop = 2,
    /// Go 1.22+: `startTheWorldWithSema(now int64, w worldStop)` carries the reason and the time
    /// the stop began; the pause is `return value - w.startedStopping`, exactly as the runtime
    /// computes it.
    WorldStop = 3,
}

impl StwAbi {
    pub const fn from_u32(v: u32) -> Option<StwAbi> {
        match v {
            1 => Some(StwAbi::NoReason),
            2 => Some(StwAbi::ReasonAtStop),
            3 => Some(StwAbi::WorldStop),
            _ => None,
        }
    }
}

/// Per-binary facts, keyed by the binary id that user space puts in every uprobe's attach
/// cookie, so one loaded program serves binaries of several Go versions.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BinaryConfig {
    /// A [`StwAbi`] value.
    pub stw_abi: u32,
    /// Offset of `runtime.g.goid` (from DWARF or the version table), for exemplars.
    pub g_goid_off: u32,
    /// For [`StwAbi::NoReason`]: a stop whose return address minus the entry address of
    /// `stopTheWorldWithSema` lies in `[other_caller_lo, other_caller_hi)` came from
    /// `runtime.stopTheWorld.func1` and is not a GC pause. Relative offsets make this
    /// independent of where a PIE binary is loaded.
    pub other_caller_lo: i64,
    pub other_caller_hi: i64,
}

/// `stwReason` values that are GC (runtime/proc.go, Go 1.21+: `stwReason.isGC`).
pub const STW_REASON_GC_MARK_TERM: u32 = 1;
pub const STW_REASON_GC_SWEEP_TERM: u32 = 2;
/// Reason recorded for a Go 1.17–1.20 stop whose caller is not a GC path.
pub const STW_REASON_OTHER_NO_REASON: u32 = 0xffff;

/// In-flight stop-the-world of one process (only one at a time: the runtime holds worldsema).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StwState {
    /// Start of the pause: the runtime's own `work.pauseStart` when the clock probes caught
    /// it, else ktime at `stopTheWorldWithSema` entry (Go <= 1.21); `w.startedStopping` (1.22+).
    pub begin_ns: u64,
    pub reason: u32,
    pub flags: u32,
    /// Go <= 1.21: the `nanotime()` the runtime took just before stopping the world for GC
    /// (it becomes `work.pauseStart`), read after the call in `gcStart`/`gcMarkDone`.
    pub clock_begin_ns: u64,
    /// Go <= 1.21: the `nanotime()` that ends the mark-termination pause in
    /// `gcMarkTermination` (the runtime adds `now - pauseStart` to `pauseNS` with it).
    pub clock_end_ns: u64,
}

/// Attach-cookie bits 32..40 of the `gc_clock` program: which `nanotime()` it reads.
pub const CLOCK_ROLE_SHIFT: u32 = 32;
/// After the `nanotime()` call that becomes `work.pauseStart` (gcStart, gcMarkDone).
pub const CLOCK_ROLE_PAUSE_BEGIN: u64 = 1;
/// After the last `nanotime()` call in `gcMarkTermination` (end of the mark-termination pause).
pub const CLOCK_ROLE_MARK_TERM_END: u64 = 2;

/// `StwState::flags`: a stop is in flight.
pub const STW_ACTIVE: u32 = 1;
/// `gcMarkTermination` was entered since the last start: the next start ends a GC cycle.
pub const STW_MARK_TERM: u32 = 2;
/// The pause was already recorded at `startTheWorldWithSema` entry (Go <= 1.21 mark term).
pub const STW_RECORDED: u32 = 4;

/// Per-process counters (per-CPU, summed by user space). Only grow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcCounters {
    /// Completed GC cycles (mark termination followed by start-the-world), as `MemStats.NumGC`.
    pub gc_cycles: u64,
    /// A start-the-world without a matching stop (probe attached mid-pause, or a lost state).
    pub stw_unpaired: u64,
    /// Sum of goroutine scheduling waits (the GoroutineSched histogram's sum, kept here too
    /// so the split below has the same denominator).
    pub goroutine_wait_ns: u64,
    /// Part of those waits during which the thread that then ran the goroutine was itself
    /// waiting in the kernel run queue (CPU contention rather than Go scheduler contention).
    pub goroutine_cpu_wait_ns: u64,
    /// Goroutines seen becoming runnable for the first time since they were created
    /// (`_Gdead` to `_Grunnable`), i.e. goroutines created while precise sampling was on.
    pub goroutines_created: u64,
    pub _reserved: [u64; 3],
}

/// Key of the per-goroutine "runnable since" map: g structs are reused but never freed, and
/// the goid is not yet assigned when a new goroutine first becomes runnable (Go <= 1.23), so
/// the g pointer identifies a goroutine in flight.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GKey {
    pub tgid: u32,
    pub _pad: u32,
    pub g: u64,
}

/// The last run-queue wait of a watched thread: [start, end] in ktime.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RunqSpan {
    pub start_ns: u64,
    pub end_ns: u64,
}

/// A goroutine that waited at least the exemplar threshold to run, sent through the ring
/// buffer (no wakeup per event: user space drains it each interval).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Exemplar {
    pub tgid: u32,
    /// OS thread that ran the goroutine.
    pub tid: u32,
    pub goid: u64,
    pub wait_ns: u64,
    /// Part of the wait during which that thread sat in the kernel run queue.
    pub cpu_wait_ns: u64,
    /// ktime when it started running.
    pub time_ns: u64,
    pub cpu: u32,
    pub _pad: u32,
}

/// A process called exec (agent discovery).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecEvent {
    pub tgid: u32,
    pub _pad: u32,
    /// ktime of the exec, to measure how long attaching took.
    pub time_ns: u64,
}

/// Index 0 of the `SAMPLING` array: ktime at which the current precise-sampling window
/// started. Runnable timestamps older than it predate the attach and are ignored.
pub const SAMPLING_WINDOW_START: u32 = 0;
/// Index 1: exemplar threshold in ns (runtime-tunable without reloading).
pub const SAMPLING_EXEMPLAR_THRESHOLD: u32 = 1;

/// Go goroutine states (src/runtime/runtime2.go, unchanged 1.17-1.25).
pub const G_RUNNABLE: u32 = 1;
pub const G_RUNNING: u32 = 2;
pub const G_DEAD: u32 = 6;

/// Indices of the global error counter array (per-CPU). Every place a handler drops data
/// increments one of these; user space reports them.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCounter {
    /// A watched process had no histogram entry (user space creates them on attach).
    HistMissing = 0,
    /// The per-process STW state map was full.
    StwStateFull = 1,
    /// The per-thread wakeup timestamp map was full (LRU: an older entry was evicted).
    ThreadWakeFull = 2,
    /// Reading user memory (Go stack) failed.
    ReadUser = 3,
    /// Reading a kernel task_struct field failed.
    ReadKernel = 4,
    /// A uprobe fired with a cookie that has no binary config.
    BinaryConfigMissing = 5,
    /// Per-process counters entry missing.
    CountersMissing = 6,
    /// The per-goroutine runnable-since map was full: a goroutine wait was lost.
    GoroutineMapFull = 7,
    /// The exemplar ring buffer was full: an exemplar was dropped (the histogram still has it).
    ExemplarDropped = 8,
    /// The exec event ring buffer was full: a new process may be discovered only by the
    /// agent's periodic /proc scan.
    ExecEventDropped = 9,
}

pub const NUM_ERROR_COUNTERS: u32 = 12;

impl ErrorCounter {
    pub const ALL: [ErrorCounter; 10] = [
        ErrorCounter::HistMissing,
        ErrorCounter::StwStateFull,
        ErrorCounter::ThreadWakeFull,
        ErrorCounter::ReadUser,
        ErrorCounter::ReadKernel,
        ErrorCounter::BinaryConfigMissing,
        ErrorCounter::CountersMissing,
        ErrorCounter::GoroutineMapFull,
        ErrorCounter::ExemplarDropped,
        ErrorCounter::ExecEventDropped,
    ];

    /// Name used in reports and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCounter::HistMissing => "hist_missing",
            ErrorCounter::StwStateFull => "stw_state_map_full",
            ErrorCounter::ThreadWakeFull => "thread_wake_map_full",
            ErrorCounter::ReadUser => "read_user_failed",
            ErrorCounter::ReadKernel => "read_kernel_failed",
            ErrorCounter::BinaryConfigMissing => "binary_config_missing",
            ErrorCounter::CountersMissing => "proc_counters_missing",
            ErrorCounter::GoroutineMapFull => "goroutine_map_full",
            ErrorCounter::ExemplarDropped => "exemplar_ringbuf_full",
            ErrorCounter::ExecEventDropped => "exec_ringbuf_full",
        }
    }
}

const _: () = assert!(core::mem::size_of::<HistKey>() == 8);
const _: () = assert!(core::mem::size_of::<Hist>() == 8 * (3 + NUM_BUCKETS));
const _: () = assert!(core::mem::size_of::<ProcConfig>() == 8);
const _: () = assert!(core::mem::size_of::<BinaryConfig>() == 24);
const _: () = assert!(core::mem::size_of::<StwState>() == 32);
const _: () = assert!(core::mem::size_of::<ProcCounters>() == 64);
const _: () = assert!(core::mem::size_of::<GKey>() == 16);
const _: () = assert!(core::mem::size_of::<RunqSpan>() == 16);
const _: () = assert!(core::mem::size_of::<Exemplar>() == 48);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 16);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), contain only integers and have no padding (checked by
    // the size assertions above).
    unsafe impl aya::Pod for HistKey {}
    unsafe impl aya::Pod for Hist {}
    unsafe impl aya::Pod for ProcConfig {}
    unsafe impl aya::Pod for BinaryConfig {}
    unsafe impl aya::Pod for StwState {}
    unsafe impl aya::Pod for ProcCounters {}
    unsafe impl aya::Pod for GKey {}
    unsafe impl aya::Pod for RunqSpan {}
    unsafe impl aya::Pod for Exemplar {}
    unsafe impl aya::Pod for ExecEvent {}
}
