//! Go's internal register ABI (ABIInternal, Go >= 1.17 on amd64, >= 1.18 on arm64) as seen
//! from a uprobe's `pt_regs`. This is the only file that knows register names.
//!
//! Integer argument/result registers, in order (src/cmd/compile/abi-internal.md):
//! - amd64: RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11
//! - arm64: R0 ... R15
//!
//! Note that aya's `ProbeContext::arg` follows the C ABI (RDI, RSI, ...) and is wrong for Go.

use aya_ebpf::{EbpfContext, programs::ProbeContext};

#[cfg(bpf_target_arch = "x86_64")]
mod arch {
    use aya_ebpf::bindings::pt_regs;

    pub type Regs = pt_regs;

    #[inline(always)]
    pub fn int_arg(r: &Regs, n: usize) -> Option<u64> {
        Some(match n {
            0 => r.rax,
            1 => r.rbx,
            2 => r.rcx,
            3 => r.rdi,
            4 => r.rsi,
            5 => r.r8,
            6 => r.r9,
            7 => r.r10,
            8 => r.r11,
            _ => return None,
        })
    }

    #[inline(always)]
    pub fn ip(r: &Regs) -> u64 {
        r.rip
    }

    /// Go ABI0 (assembly functions such as `runtime.nanotime1`) returns results on the
    /// stack: right after the CALL, the first result is at 0(SP).
    pub const ABI0_RESULT0_SP_OFFSET: u64 = 0;

    #[inline(always)]
    pub fn sp(r: &Regs) -> u64 {
        r.rsp
    }

    /// At a function's entry, the return address is the word at the stack pointer.
    #[inline(always)]
    pub fn return_address(r: &Regs) -> Result<u64, i64> {
        // SAFETY: reads user memory through the helper, which tolerates faults.
        unsafe { aya_ebpf::helpers::bpf_probe_read_user(r.rsp as *const u64) }.map_err(|e| e as i64)
    }
}

#[cfg(bpf_target_arch = "aarch64")]
mod arch {
    use aya_ebpf::bindings::user_pt_regs;

    pub type Regs = user_pt_regs;

    #[inline(always)]
    pub fn int_arg(r: &Regs, n: usize) -> Option<u64> {
        if n < 16 { Some(r.regs[n]) } else { None }
    }

    #[inline(always)]
    pub fn ip(r: &Regs) -> u64 {
        r.pc
    }

    /// Go ABI0 on arm64: 0(RSP) holds the callee's saved LR slot, results start at 8(RSP).
    /// Checked on go1.19/1.21 arm64 builds (`MOVD 8(RSP), Rn` after `CALL runtime.nanotime1.abi0`
    /// in gcStart, gcMarkDone, gcMarkTermination) by tests/tests/arm64_files.rs.
    pub const ABI0_RESULT0_SP_OFFSET: u64 = 8;

    #[inline(always)]
    pub fn sp(r: &Regs) -> u64 {
        r.sp
    }

    /// At a function's entry, the return address is in the link register (X30).
    #[inline(always)]
    pub fn return_address(r: &Regs) -> Result<u64, i64> {
        Ok(r.regs[30])
    }
}

#[inline(always)]
fn regs(ctx: &ProbeContext) -> &arch::Regs {
    // SAFETY: for uprobe programs the context is the task's saved user registers.
    unsafe { &*(ctx.as_ptr() as *const arch::Regs) }
}

/// The `n`th integer argument at function entry (0-based).
#[inline(always)]
pub fn int_arg(ctx: &ProbeContext, n: usize) -> u64 {
    arch::int_arg(regs(ctx), n).unwrap_or(0)
}

/// The first integer result at a RET instruction.
#[inline(always)]
pub fn int_result(ctx: &ProbeContext) -> u64 {
    int_arg(ctx, 0)
}

/// Address of the probed instruction (the kernel rewinds the IP to the breakpoint before
/// running uprobe handlers).
#[inline(always)]
pub fn ip(ctx: &ProbeContext) -> u64 {
    arch::ip(regs(ctx))
}

/// Caller's return address, valid only at a function's first instruction.
#[inline(always)]
pub fn return_address(ctx: &ProbeContext) -> Result<u64, i64> {
    arch::return_address(regs(ctx))
}

/// First result of a Go ABI0 function, read right after the call returned.
#[inline(always)]
pub fn abi0_result0(ctx: &ProbeContext) -> Result<u64, i64> {
    let at = arch::sp(regs(ctx)) + arch::ABI0_RESULT0_SP_OFFSET;
    // SAFETY: reads user memory through the helper, which tolerates faults.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(at as *const u64) }.map_err(|e| e as i64)
}
