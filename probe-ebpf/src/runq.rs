//! OS run-queue latency of the watched processes' threads (like bcc's runqlat, per process):
//! from the moment a thread becomes runnable (woken, or switched out while still runnable)
//! until it is switched in.
//!
//! `task_struct` field offsets come from the running kernel's BTF, read by user space and set
//! as load-time globals (aya has no CO-RE relocations for Rust programs).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_probe_read_kernel,
    macros::{btf_tracepoint, map},
    maps::RingBuf,
    programs::BtfTracePointContext,
};
use probe_common::{ErrorCounter, ExecEvent, HistKind, RunqSpan};

use crate::{
    goroutine::THREAD_LAST_RUNQ,
    maps::{THREAD_WAKE, count_error, current_ids, is_watched, now_ns, record},
};

#[unsafe(no_mangle)]
static TASK_PID_OFF: u32 = 0;
#[unsafe(no_mangle)]
static TASK_TGID_OFF: u32 = 0;

#[inline(always)]
fn task_u32(task: *const u8, off: &'static u32) -> Result<u32, i64> {
    // SAFETY: read_volatile keeps the compiler from folding the load-time global to 0.
    let off = unsafe { core::ptr::read_volatile(off) } as usize;
    // SAFETY: kernel pointer from the tracepoint; the helper tolerates faults.
    unsafe { bpf_probe_read_kernel(task.wrapping_add(off) as *const u32) }.map_err(|e| {
        count_error(ErrorCounter::ReadKernel);
        e as i64
    })
}

#[inline(always)]
fn mark_runnable(tid: u32, now: u64, flags: u64) {
    match THREAD_WAKE.insert(&tid, &now, flags) {
        Ok(()) => {}
        // EEXIST with BPF_NOEXIST: already runnable, keep the earlier time.
        Err(e) if e == -17 => {}
        Err(_) => count_error(ErrorCounter::ThreadWakeFull),
    }
}

fn on_wakeup(task: *const u8) -> Result<(), i64> {
    let tgid = task_u32(task, &TASK_TGID_OFF)?;
    if !is_watched(tgid) {
        return Ok(());
    }
    let tid = task_u32(task, &TASK_PID_OFF)?;
    mark_runnable(tid, now_ns(), BPF_NOEXIST as u64);
    Ok(())
}

#[btf_tracepoint(function = "sched_wakeup")]
pub fn sched_wakeup(ctx: BtfTracePointContext) -> i32 {
    let _ = on_wakeup(ctx.arg(0));
    0
}

#[btf_tracepoint(function = "sched_wakeup_new")]
pub fn sched_wakeup_new(ctx: BtfTracePointContext) -> i32 {
    let _ = on_wakeup(ctx.arg(0));
    0
}

/// `sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
/// unsigned int prev_state)`; `prev` is the current task.
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> i32 {
    let _ = try_sched_switch(&ctx);
    0
}

fn try_sched_switch(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let now = now_ns();
    let (prev_tgid, prev_tid) = current_ids();
    if prev_tid != 0 && is_watched(prev_tgid) {
        let preempt: u64 = ctx.arg(0);
        let prev_state: u64 = ctx.arg(3);
        // A preempted task stays on the run queue even if it had begun to go to sleep.
        if preempt & 0xff != 0 || prev_state as u32 == 0 {
            mark_runnable(prev_tid, now, 0);
        } else {
            // Going to sleep: forget any wakeup recorded while it was still running.
            let _ = THREAD_WAKE.remove(&prev_tid);
        }
    }
    let next: *const u8 = ctx.arg(2);
    let next_tid = task_u32(next, &TASK_PID_OFF)?;
    // SAFETY: the value is copied out immediately.
    let Some(since) = (unsafe { THREAD_WAKE.get(&next_tid) }).copied() else {
        return Ok(());
    };
    let _ = THREAD_WAKE.remove(&next_tid);
    let next_tgid = task_u32(next, &TASK_TGID_OFF)?;
    if is_watched(next_tgid) {
        record(next_tgid, HistKind::OsRunq, now.saturating_sub(since));
        // For the goroutine-latency split: was this thread waiting for a CPU meanwhile?
        let span = RunqSpan { start_ns: since, end_ns: now };
        if THREAD_LAST_RUNQ.insert(&next_tid, &span, 0).is_err() {
            count_error(ErrorCounter::ThreadWakeFull);
        }
    }
    Ok(())
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(_ctx: BtfTracePointContext) -> i32 {
    let (tgid, tid) = current_ids();
    if is_watched(tgid) {
        let _ = THREAD_WAKE.remove(&tid);
        let _ = THREAD_LAST_RUNQ.remove(&tid);
    }
    0
}

/// Every exec on the machine, for the agent's discovery of new Go processes (low rate; the
/// ring buffer wakes user space per event so it can attach within milliseconds).
#[map(name = "EXEC_EVENTS")]
pub static EXEC_EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(_ctx: BtfTracePointContext) -> i32 {
    let (tgid, _) = current_ids();
    let ev = ExecEvent { tgid, _pad: 0, time_ns: now_ns() };
    if EXEC_EVENTS.output::<ExecEvent>(&ev, 0).is_err() {
        count_error(ErrorCounter::ExecEventDropped);
    }
    0
}
