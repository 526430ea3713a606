//! Stop-the-world pauses and GC cycles from uprobes on the Go runtime.
//!
//! Which probes a binary gets, and what each register holds, depends on its [`StwAbi`]
//! (chosen by user space from the Go version and passed per binary through the attach cookie):
//!
//! | probe | NoReason (1.17–1.20) | ReasonAtStop (1.21) | WorldStop (1.22+) |
//! |---|---|---|---|
//! | `stopTheWorldWithSema` entry | begin = now; GC unless caller is `stopTheWorld.func1` | begin = now; reason = arg0 | not attached |
//! | `gcMarkTermination` entry | mark flag | mark flag | mark flag |
//! | `startTheWorldWithSema` entry | if mark flag: end = now (the runtime took `now` before calling start) | same | reason = arg1, begin = arg2 (`w.startedStopping`) |
//! | each RET of `startTheWorldWithSema` | end = result | end = result | end = result (`now`) |
//!
//! Only one stop is in flight per process (the runtime holds `worldsema`), so state is per tgid.
//! A completed GC cycle is a start-the-world after `gcMarkTermination`, as `MemStats.NumGC`.

use aya_ebpf::{EbpfContext, helpers::generated::bpf_get_attach_cookie, macros::uprobe, programs::ProbeContext};
use probe_common::{
    BinaryConfig, CLOCK_ROLE_MARK_TERM_END, CLOCK_ROLE_PAUSE_BEGIN, CLOCK_ROLE_SHIFT, ErrorCounter, HistKind, STW_ACTIVE, STW_MARK_TERM, STW_REASON_GC_MARK_TERM,
    STW_REASON_GC_SWEEP_TERM, STW_REASON_OTHER_NO_REASON, StwAbi, StwState,
};

use crate::{
    go_abi,
    maps::{BINARIES, STW_STATE, count_error, current_ids, is_watched, now_ns, record, with_counters},
};

#[inline(always)]
fn cookie(ctx: &ProbeContext) -> u64 {
    // SAFETY: the context pointer comes from the kernel.
    unsafe { bpf_get_attach_cookie(ctx.as_ptr()) }
}

#[inline(always)]
fn binary_config(ctx: &ProbeContext) -> Result<BinaryConfig, i64> {
    let cookie = cookie(ctx);
    // SAFETY: the value is copied out immediately.
    match unsafe { BINARIES.get(&(cookie as u32)) } {
        Some(c) => Ok(*c),
        None => {
            count_error(ErrorCounter::BinaryConfigMissing);
            // Rare error path only: never log in the hot paths.
            aya_log_ebpf::warn!(ctx, "uprobe cookie {} has no binary config", cookie);
            Err(1)
        }
    }
}

#[inline(always)]
fn is_gc(abi: StwAbi, reason: u32) -> bool {
    match abi {
        StwAbi::NoReason => reason != STW_REASON_OTHER_NO_REASON,
        StwAbi::ReasonAtStop | StwAbi::WorldStop => {
            reason == STW_REASON_GC_MARK_TERM || reason == STW_REASON_GC_SWEEP_TERM
        }
    }
}

#[inline(always)]
fn store(tgid: u32, st: &StwState) {
    if STW_STATE.insert(&tgid, st, 0).is_err() {
        count_error(ErrorCounter::StwStateFull);
    }
}

/// Records the pause and, after mark termination, one GC cycle; clears the in-flight state.
#[inline(always)]
fn finish(tgid: u32, abi: StwAbi, st: &mut StwState, end_ns: u64) {
    let pause = end_ns.saturating_sub(st.begin_ns);
    let kind = if is_gc(abi, st.reason) { HistKind::StwGc } else { HistKind::StwOther };
    record(tgid, kind, pause);
    if st.flags & STW_MARK_TERM != 0 {
        with_counters(tgid, |c| c.gc_cycles += 1);
    }
    st.flags = 0;
    st.clock_begin_ns = 0;
    st.clock_end_ns = 0;
}

#[uprobe]
pub fn stw_stop_entry(ctx: ProbeContext) -> u32 {
    let _ = try_stw_stop_entry(&ctx);
    0
}

fn try_stw_stop_entry(ctx: &ProbeContext) -> Result<(), i64> {
    let (tgid, _) = current_ids();
    if !is_watched(tgid) {
        return Ok(());
    }
    let now = now_ns();
    let cfg = binary_config(ctx)?;
    let reason = match StwAbi::from_u32(cfg.stw_abi) {
        Some(StwAbi::NoReason) => {
            let ret = go_abi::return_address(ctx).inspect_err(|_| count_error(ErrorCounter::ReadUser))?;
            let delta = ret.wrapping_sub(go_abi::ip(ctx)) as i64;
            if delta >= cfg.other_caller_lo && delta < cfg.other_caller_hi {
                STW_REASON_OTHER_NO_REASON
            } else {
                0
            }
        }
        Some(StwAbi::ReasonAtStop) => (go_abi::int_arg(ctx, 0) & 0xff) as u32,
        _ => return Ok(()),
    };
    // Prefer the runtime's own pauseStart, caught by gc_clock moments ago (GC stops only).
    let clock = match STW_STATE.get_ptr(&tgid) {
        // SAFETY: map value pointer valid while the program runs.
        Some(st) => unsafe { (*st).clock_begin_ns },
        None => 0,
    };
    let begin_ns = if clock != 0 && clock <= now && now - clock < MAX_CLOCK_AGE_NS { clock } else { now };
    store(tgid, &StwState { begin_ns, reason, flags: STW_ACTIVE, clock_begin_ns: 0, clock_end_ns: 0 });
    Ok(())
}

/// A clock value older than this is stale (its pause never came) and is not used.
const MAX_CLOCK_AGE_NS: u64 = 50_000_000;

/// Go <= 1.21: reads the `nanotime()` result right after the runtime's call (ABI0: on the
/// stack), at the sites user space found by disassembly; the cookie says which one it is.
#[uprobe]
pub fn gc_clock(ctx: ProbeContext) -> u32 {
    let _ = try_gc_clock(&ctx);
    0
}

fn try_gc_clock(ctx: &ProbeContext) -> Result<(), i64> {
    let (tgid, _) = current_ids();
    if !is_watched(tgid) {
        return Ok(());
    }
    let role = cookie(ctx) >> CLOCK_ROLE_SHIFT;
    let t = go_abi::abi0_result0(ctx).inspect_err(|_| count_error(ErrorCounter::ReadUser))?;
    match STW_STATE.get_ptr_mut(&tgid) {
        Some(st) => {
            // SAFETY: map value pointer valid while the program runs.
            let st = unsafe { &mut *st };
            if role == CLOCK_ROLE_PAUSE_BEGIN {
                st.clock_begin_ns = t;
            } else if role == CLOCK_ROLE_MARK_TERM_END {
                st.clock_end_ns = t;
            }
        }
        None if role == CLOCK_ROLE_PAUSE_BEGIN => {
            store(tgid, &StwState { clock_begin_ns: t, ..StwState::default() });
        }
        None => {}
    }
    Ok(())
}

#[uprobe]
pub fn gc_mark_term_entry(_ctx: ProbeContext) -> u32 {
    let (tgid, _) = current_ids();
    if !is_watched(tgid) {
        return 0;
    }
    // Idempotent: gcMarkTermination runs on a goroutine stack and its entry can be hit twice
    // when the stack grows (morestack re-executes the prologue).
    match STW_STATE.get_ptr_mut(&tgid) {
        // SAFETY: map value pointer valid while the program runs.
        Some(st) => unsafe { (*st).flags |= STW_MARK_TERM },
        None => store(tgid, &StwState { flags: STW_MARK_TERM, ..StwState::default() }),
    }
    0
}

#[uprobe]
pub fn stw_start_entry(ctx: ProbeContext) -> u32 {
    let _ = try_stw_start_entry(&ctx);
    0
}

fn try_stw_start_entry(ctx: &ProbeContext) -> Result<(), i64> {
    let (tgid, _) = current_ids();
    if !is_watched(tgid) {
        return Ok(());
    }
    let now = now_ns();
    let cfg = binary_config(ctx)?;
    let abi = StwAbi::from_u32(cfg.stw_abi).ok_or(1)?;
    if abi == StwAbi::WorldStop {
        let flags = match STW_STATE.get_ptr(&tgid) {
            // SAFETY: map value pointer valid while the program runs.
            Some(st) => (unsafe { (*st).flags }) & STW_MARK_TERM,
            None => 0,
        };
        let st = StwState {
            begin_ns: go_abi::int_arg(ctx, 2),
            reason: (go_abi::int_arg(ctx, 1) & 0xff) as u32,
            flags: flags | STW_ACTIVE,
            ..StwState::default()
        };
        store(tgid, &st);
        return Ok(());
    }
    let Some(st) = STW_STATE.get_ptr_mut(&tgid) else {
        with_counters(tgid, |c| c.stw_unpaired += 1);
        return Ok(());
    };
    // SAFETY: map value pointer valid while the program runs.
    let st = unsafe { &mut *st };
    if st.flags & STW_ACTIVE == 0 {
        with_counters(tgid, |c| c.stw_unpaired += 1);
        aya_log_ebpf::debug!(ctx, "pid {}: start-the-world without a stop", tgid);
        return Ok(());
    }
    if st.flags & STW_MARK_TERM != 0 {
        // Go <= 1.21 ends the mark-termination pause with a nanotime() taken in
        // gcMarkTermination before calling startTheWorldWithSema, and ignores start's result.
        let clock = st.clock_end_ns;
        let end = if clock != 0 && clock >= st.begin_ns && clock <= now { clock } else { now };
        finish(tgid, abi, st, end);
    }
    Ok(())
}

#[uprobe]
pub fn stw_start_ret(ctx: ProbeContext) -> u32 {
    let _ = try_stw_start_ret(&ctx);
    0
}

fn try_stw_start_ret(ctx: &ProbeContext) -> Result<(), i64> {
    let (tgid, _) = current_ids();
    if !is_watched(tgid) {
        return Ok(());
    }
    let cfg = binary_config(ctx)?;
    let abi = StwAbi::from_u32(cfg.stw_abi).ok_or(1)?;
    let Some(st) = STW_STATE.get_ptr_mut(&tgid) else {
        return Ok(());
    };
    // SAFETY: map value pointer valid while the program runs.
    let st = unsafe { &mut *st };
    if st.flags & STW_ACTIVE == 0 {
        // Already recorded at start entry (mark termination on Go <= 1.21).
        return Ok(());
    }
    finish(tgid, abi, st, go_abi::int_result(ctx));
    Ok(())
}
