//! Addresses of runtime globals that stripped binaries do not name, recovered from the code
//! that uses them (RIP-relative `LEA`s on amd64), and file-offset to address translation for
//! reading a live process's memory.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use crate::{Arch, Error, Function, GoBinary, Result};

fn decode(address: u64, code: &[u8]) -> Vec<Instruction> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        out.push(decoder.decode());
    }
    out
}

/// `LEA reg, [rip + disp]`: (reg, absolute target).
fn rip_lea(insn: &Instruction) -> Option<(Register, u64)> {
    (insn.mnemonic() == Mnemonic::Lea && insn.is_ip_rel_memory_operand() && insn.op0_kind() == OpKind::Register)
        .then(|| (insn.op0_register(), insn.ip_rel_memory_address()))
}

impl GoBinary {
    /// Addresses passed as the first argument (RAX, Go's register ABI) to `callee` by `f`:
    /// each `LEA RAX, [rip+X]` within the two instructions before a direct call to `callee`
    /// gives X. amd64 only.
    pub fn lea_args_to(&self, f: &Function, callee: &Function) -> Result<Vec<u64>> {
        if self.arch() != Arch::Amd64 {
            return Err(Error::Unsupported { what: "data references are decoded on amd64 only".into() });
        }
        let insns = decode(f.address, self.code(f)?);
        let mut out = Vec::new();
        for (i, insn) in insns.iter().enumerate() {
            if insn.mnemonic() != Mnemonic::Call || insn.near_branch_target() != callee.address {
                continue;
            }
            let found = insns[i.saturating_sub(2)..i].iter().rev().find_map(|p| rip_lea(p).filter(|(r, _)| *r == Register::RAX));
            if let Some((_, target)) = found {
                out.push(target);
            }
        }
        Ok(out)
    }

    /// Bases of `[base + index*8]` tables that `f` indexes right after loading the base with a
    /// RIP-relative `LEA` (an inlined `counts[i]` access to a global array). amd64 only.
    pub fn lea_indexed_tables(&self, f: &Function) -> Result<Vec<u64>> {
        if self.arch() != Arch::Amd64 {
            return Err(Error::Unsupported { what: "data references are decoded on amd64 only".into() });
        }
        let insns = decode(f.address, self.code(f)?);
        let mut out = Vec::new();
        for w in insns.windows(2) {
            let Some((reg, target)) = rip_lea(&w[0]) else { continue };
            let next = &w[1];
            if next.mnemonic() == Mnemonic::Lea
                && next.memory_base() == reg
                && next.memory_index_scale() == 8
                && next.memory_index() != Register::None
            {
                out.push(target);
            }
        }
        Ok(out)
    }

    /// Link-time virtual address of a file offset (inside a `PT_LOAD` segment's file bytes),
    /// for turning `/proc/PID/maps` entries into the load bias of a PIE.
    pub fn file_offset_to_vaddr(&self, offset: u64) -> Option<u64> {
        self.elf
            .segments
            .iter()
            .find(|s| offset >= s.offset && offset < s.offset + s.filesz)
            .map(|s| s.vaddr + (offset - s.offset))
    }
}
