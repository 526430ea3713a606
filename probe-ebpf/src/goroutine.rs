//! Goroutine scheduling latency, precise source: a uprobe on `runtime.casgstatus(gp, oldval,
//! newval)`, the runtime's choke point for goroutine state changes (same signature Go
//! 1.17–1.25, never inlined outside PGO builds).
//!
//! - `newval == _Grunnable`: remember when (per process and g pointer).
//! - `oldval == _Grunnable && newval == _Grunning`: the wait goes into the process's
//!   histogram; long waits also go to user space as exemplars.
//! - `newval == _Gdead`: forget the goroutine.
//!
//! User space attaches this probe only during sampling windows (it fires millions of times a
//! second on a busy program); timestamps from before the current window are ignored.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_smp_processor_id, bpf_probe_read_user, generated::bpf_get_attach_cookie},
    macros::{map, uprobe},
    maps::{Array, HashMap, RingBuf},
    programs::ProbeContext,
};
use probe_common::{
    ErrorCounter, Exemplar, G_DEAD, G_RUNNABLE, G_RUNNING, GKey, HistKind, RunqSpan, SAMPLING_EXEMPLAR_THRESHOLD,
    SAMPLING_WINDOW_START,
};

use crate::{
    go_abi,
    maps::{BINARIES, count_error, current_ids, is_watched, now_ns, record, with_counters},
};

#[map(name = "RUNNABLE_SINCE")]
pub static RUNNABLE_SINCE: HashMap<GKey, u64> = HashMap::with_max_entries(262_144, 0);

/// Filled by the scheduler tracepoints for watched threads.
#[map(name = "THREAD_LAST_RUNQ")]
pub static THREAD_LAST_RUNQ: HashMap<u32, RunqSpan> = HashMap::with_max_entries(65_536, 0);

#[map(name = "EXEMPLARS")]
pub static EXEMPLARS: RingBuf = RingBuf::with_byte_size(1024 * 1024, 0);

#[map(name = "SAMPLING")]
pub static SAMPLING: Array<u64> = Array::with_max_entries(4, 0);

/// BPF_RB_NO_WAKEUP: user space polls; no wakeup per exemplar.
const BPF_RB_NO_WAKEUP: u64 = 1;

#[inline(always)]
fn sampling(i: u32) -> u64 {
    SAMPLING.get(i).copied().unwrap_or(0)
}

#[uprobe]
pub fn goroutine_casgstatus(ctx: ProbeContext) -> u32 {
    let _ = try_casgstatus(&ctx);
    0
}

fn try_casgstatus(ctx: &ProbeContext) -> Result<(), i64> {
    let (tgid, tid) = current_ids();
    if !is_watched(tgid) {
        return Ok(());
    }
    let gp = go_abi::int_arg(ctx, 0);
    let old = go_abi::int_arg(ctx, 1) as u32;
    let new = go_abi::int_arg(ctx, 2) as u32;
    let key = GKey { tgid, _pad: 0, g: gp };
    if new == G_RUNNABLE {
        if RUNNABLE_SINCE.insert(&key, &now_ns(), 0).is_err() {
            count_error(ErrorCounter::GoroutineMapFull);
        }
        if old == G_DEAD {
            with_counters(tgid, |c| c.goroutines_created += 1);
        }
        return Ok(());
    }
    if new == G_DEAD {
        let _ = RUNNABLE_SINCE.remove(&key);
        return Ok(());
    }
    if old != G_RUNNABLE || new != G_RUNNING {
        return Ok(());
    }
    // SAFETY: the value is copied out immediately.
    let Some(since) = (unsafe { RUNNABLE_SINCE.get(&key) }).copied() else {
        return Ok(());
    };
    let _ = RUNNABLE_SINCE.remove(&key);
    if since < sampling(SAMPLING_WINDOW_START) {
        // Became runnable before this sampling window: part of its wait was not observed.
        return Ok(());
    }
    let now = now_ns();
    let wait = now.saturating_sub(since);
    record(tgid, HistKind::GoroutineSched, wait);
    // How much of the wait the running thread itself spent in the kernel run queue.
    // SAFETY: the value is copied out immediately.
    let cpu_wait = match unsafe { THREAD_LAST_RUNQ.get(&tid) } {
        Some(span) => {
            let lo = if span.start_ns > since { span.start_ns } else { since };
            let hi = if span.end_ns < now { span.end_ns } else { now };
            hi.saturating_sub(lo)
        }
        None => 0,
    };
    with_counters(tgid, |c| {
        c.goroutine_wait_ns += wait;
        c.goroutine_cpu_wait_ns += cpu_wait;
    });
    if wait >= sampling(SAMPLING_EXEMPLAR_THRESHOLD) {
        // SAFETY: the context pointer comes from the kernel.
        let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
        // SAFETY: the value is copied out immediately.
        let goid_off = unsafe { BINARIES.get(&(cookie as u32)) }.map(|c| c.g_goid_off).unwrap_or(0);
        let goid = if goid_off == 0 {
            0
        } else {
            // SAFETY: user memory read through the helper, which tolerates faults.
            unsafe { bpf_probe_read_user((gp + u64::from(goid_off)) as *const u64) }.unwrap_or_else(|_| {
                count_error(ErrorCounter::ReadUser);
                0
            })
        };
        let ex = Exemplar {
            tgid,
            tid,
            goid,
            wait_ns: wait,
            cpu_wait_ns: cpu_wait,
            time_ns: now,
            // SAFETY: no preconditions.
            cpu: unsafe { bpf_get_smp_processor_id() },
            _pad: 0,
        };
        if EXEMPLARS.output::<Exemplar>(&ex, BPF_RB_NO_WAKEUP).is_err() {
            count_error(ErrorCounter::ExemplarDropped);
        }
    }
    Ok(())
}

/// Does nothing: benchmarks attach it where `goroutine_casgstatus` goes to measure the bare
/// cost of a uprobe trap on those sites.
#[uprobe]
pub fn calib_noop(_ctx: ProbeContext) -> u32 {
    0
}
