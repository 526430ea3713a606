//! Maps and the small helpers every handler uses on them.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
};
use probe_common::{
    BinaryConfig, ErrorCounter, Hist, HistKey, HistKind, NUM_BUCKETS, NUM_ERROR_COUNTERS,
    ProcConfig, ProcCounters, StwState, bucket_index,
};

/// Maximum number of processes watched at once (user space enforces it before inserting).
pub const MAX_PROCS: u32 = 4096;

#[map(name = "WATCHED")]
pub static WATCHED: HashMap<u32, ProcConfig> = HashMap::with_max_entries(MAX_PROCS, 0);

#[map(name = "BINARIES")]
pub static BINARIES: HashMap<u32, BinaryConfig> = HashMap::with_max_entries(1024, 0);

#[map(name = "HISTS")]
pub static HISTS: PerCpuHashMap<HistKey, Hist> =
    PerCpuHashMap::with_max_entries(MAX_PROCS * HistKind::ALL.len() as u32, 0);

#[map(name = "PROC_COUNTERS")]
pub static PROC_COUNTERS: PerCpuHashMap<u32, ProcCounters> =
    PerCpuHashMap::with_max_entries(MAX_PROCS, 0);

#[map(name = "ERRORS")]
pub static ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NUM_ERROR_COUNTERS, 0);

/// Not per-CPU: a stop and the matching start can run on different CPUs.
#[map(name = "STW_STATE")]
pub static STW_STATE: HashMap<u32, StwState> = HashMap::with_max_entries(MAX_PROCS, 0);

/// Thread id -> ktime it became runnable (woken, or preempted while runnable). A plain hash
/// (not LRU) so that a full map is counted instead of silently evicting.
#[map(name = "THREAD_WAKE")]
pub static THREAD_WAKE: HashMap<u32, u64> = HashMap::with_max_entries(65536, 0);

#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// (tgid, tid) of the current task.
#[inline(always)]
pub fn current_ids() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    ((id >> 32) as u32, id as u32)
}

#[inline(always)]
pub fn is_watched(tgid: u32) -> bool {
    // SAFETY: the value is only tested for presence.
    unsafe { WATCHED.get(&tgid) }.is_some()
}

#[inline(always)]
pub fn count_error(e: ErrorCounter) {
    if let Some(p) = ERRORS.get_ptr_mut(e as u32) {
        // SAFETY: per-CPU slot, valid for the duration of the program.
        unsafe { *p += 1 };
    }
}

/// Adds one value to the process's histogram of `kind`.
#[inline(always)]
pub fn record(tgid: u32, kind: HistKind, value_ns: u64) {
    let key = HistKey { tgid, kind: kind as u32 };
    let Some(h) = HISTS.get_ptr_mut(&key) else {
        count_error(ErrorCounter::HistMissing);
        return;
    };
    // SAFETY: per-CPU value owned by this CPU while the program runs.
    let h = unsafe { &mut *h };
    h.count += 1;
    h.sum_ns += value_ns;
    if value_ns > h.max_ns {
        h.max_ns = value_ns;
    }
    let idx = bucket_index(value_ns);
    if idx < NUM_BUCKETS {
        h.buckets[idx] += 1;
    }
}

#[inline(always)]
pub fn with_counters(tgid: u32, f: impl FnOnce(&mut ProcCounters)) {
    match PROC_COUNTERS.get_ptr_mut(&tgid) {
        // SAFETY: per-CPU value owned by this CPU while the program runs.
        Some(c) => f(unsafe { &mut *c }),
        None => count_error(ErrorCounter::CountersMissing),
    }
}
