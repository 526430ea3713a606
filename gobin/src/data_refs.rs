//! Addresses of runtime globals that stripped binaries do not name, recovered from the code
//! that uses them (RIP-relative `LEA`s on amd64, `ADRP` + `ADD` pairs on arm64), and file-offset
//! to address translation for reading a live process's memory.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use crate::{Arch, Function, GoBinary, Result};

fn decode(address: u64, code: &[u8]) -> Vec<Instruction> {
    crate::disasm::amd64_insns(address, code).collect()
}

/// `LEA reg, [rip + disp]`: (reg, absolute target).
fn rip_lea(insn: &Instruction) -> Option<(Register, u64)> {
    (insn.mnemonic() == Mnemonic::Lea && insn.is_ip_rel_memory_operand() && insn.op0_kind() == OpKind::Register)
        .then(|| (insn.op0_register(), insn.ip_rel_memory_address()))
}

/// arm64 instruction decoding for the few forms Go's compiler uses to take a global's address
/// (Arm ARM, C6.2): `ADRP Xd, label` then `ADD Xd', Xd, #lo12`.
mod arm64 {
    /// `ADRP Xd, label` at `pc`: (d, 4 KiB page address).
    pub fn adrp(pc: u64, word: u32) -> Option<(u32, u64)> {
        // 1 immlo:2 10000 immhi:19 Rd:5
        if word & 0x9f00_0000 != 0x9000_0000 {
            return None;
        }
        let imm21 = ((word >> 5) & 0x7_ffff) << 2 | (word >> 29) & 3;
        let imm = i64::from((imm21 << 11) as i32 >> 11) << 12;
        Some((word & 0x1f, (pc & !0xfff).wrapping_add_signed(imm)))
    }

    /// `ADD Xd, Xn, #imm{, LSL #12}` (64-bit, immediate): (d, n, imm).
    pub fn add_imm(word: u32) -> Option<(u32, u32, u64)> {
        // sf=1 op=0 S=0 100010 sh imm12 Rn Rd
        if word & 0xff80_0000 != 0x9100_0000 {
            return None;
        }
        let imm = u64::from((word >> 10) & 0xfff) << if word & (1 << 22) != 0 { 12 } else { 0 };
        Some((word & 0x1f, (word >> 5) & 0x1f, imm))
    }

    /// `ADD Xd, Xn, Xm, LSL #amount` (64-bit, shifted register): (d, n, m, amount).
    pub fn add_lsl(word: u32) -> Option<(u32, u32, u32, u32)> {
        // sf=1 op=0 S=0 01011 shift=00 0 Rm imm6 Rn Rd
        if word & 0xffe0_0000 != 0x8b00_0000 {
            return None;
        }
        Some((word & 0x1f, (word >> 5) & 0x1f, (word >> 16) & 0x1f, (word >> 10) & 0x3f))
    }

    /// `BL label` at `pc`: the target.
    pub fn bl(pc: u64, word: u32) -> Option<u64> {
        (word & 0xfc00_0000 == 0x9400_0000).then(|| pc.wrapping_add_signed(i64::from(((word & 0x03ff_ffff) << 6) as i32 >> 6) * 4))
    }

    /// `ADRP Xr, page; ADD Xd, Xr, #lo` at `words[i]`, `words[i + 1]`: (d, page + lo).
    pub fn address_pair(words: &[(u64, u32)], i: usize) -> Option<(u32, u64)> {
        let (&(pc, w0), &(_, w1)) = (words.get(i)?, words.get(i + 1)?);
        let (r, page) = adrp(pc, w0)?;
        let (d, n, lo) = add_imm(w1)?;
        (n == r).then_some((d, page + lo))
    }
}

impl GoBinary {
    /// Addresses passed as the first argument (RAX on amd64, R0 on arm64: Go's register ABI) to
    /// `callee` by `f`. amd64: each `LEA RAX, [rip+X]` within the two instructions before a
    /// direct call to `callee` gives X. arm64: each `ADRP Rn, page; ADD R0, Rn, #lo` pair
    /// within the three instructions before a `BL callee` gives page + lo.
    pub fn lea_args_to(&self, f: &Function, callee: &Function) -> Result<Vec<u64>> {
        if self.arch() == Arch::Arm64 {
            let words: Vec<(u64, u32)> = crate::disasm::arm64_words(f.address, self.code(f)?).collect();
            let mut out = Vec::new();
            for (i, &(pc, word)) in words.iter().enumerate() {
                if arm64::bl(pc, word) != Some(callee.address) {
                    continue;
                }
                let found = (i.saturating_sub(4)..i.saturating_sub(1))
                    .rev()
                    .find_map(|j| arm64::address_pair(&words, j).filter(|(d, _)| *d == 0));
                if let Some((_, target)) = found {
                    out.push(target);
                }
            }
            return Ok(out);
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

    /// Bases of `[base + index*8]` tables that `f` indexes right after loading the base (an
    /// inlined `counts[i]` access to a global array). amd64: a RIP-relative `LEA base` then
    /// `LEA r, [base + i*8]`. arm64: `ADRP Rn, page; ADD Rb, Rn, #lo` then
    /// `ADD Rd, Rb, Ri, LSL #3`.
    pub fn lea_indexed_tables(&self, f: &Function) -> Result<Vec<u64>> {
        if self.arch() == Arch::Arm64 {
            let words: Vec<(u64, u32)> = crate::disasm::arm64_words(f.address, self.code(f)?).collect();
            let mut out = Vec::new();
            for i in 0..words.len() {
                let Some((base, target)) = arm64::address_pair(&words, i) else { continue };
                let indexed = words.get(i + 2).and_then(|&(_, w)| arm64::add_lsl(w)).is_some_and(|(_, n, _, shift)| n == base && shift == 3);
                if indexed {
                    out.push(target);
                }
            }
            return Ok(out);
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

#[cfg(test)]
mod tests {
    use super::arm64::*;

    // Words and addresses from `go tool objdump` of go1.19.8 / go1.21.13 linux/arm64 builds
    // (objdump prints the words big-endian; these are the values).

    #[test]
    fn adrp_add_pair() {
        // 0x49aa8 ADRP 1384448(PC), R1; 0x49aac ADD $2008, R1, R1; 0x49ab0 ADD R2<<3, R1, R1
        let words = [(0x49aa8, 0xd000_0a81), (0x49aac, 0x911f_6021), (0x49ab0, 0x8b02_0c21)];
        assert_eq!(adrp(0x49aa8, 0xd000_0a81), Some((1, 0x49000 + 1_384_448)));
        assert_eq!(add_imm(0x911f_6021), Some((1, 1, 2008)));
        assert_eq!(add_lsl(0x8b02_0c21), Some((1, 1, 2, 3)));
        assert_eq!(address_pair(&words, 0), Some((1, 0x49000 + 1_384_448 + 2008)));
        assert_eq!(address_pair(&words, 1), None);
        // ADD $4096 form (sh = 1) and a negative ADRP page offset.
        assert_eq!(add_imm(0x9140_0421), Some((1, 1, 4096)));
        assert_eq!(adrp(0x10_0000, 0xf0ff_fff0), Some((16, 0x10_0000 - 0x1000)));
        // Not an ADRP (ADR: bit 31 clear), not a 64-bit ADD.
        assert_eq!(adrp(0, 0x1000_0000), None);
        assert_eq!(add_imm(0x1100_0000), None);
        assert_eq!(add_lsl(0x8b42_0c21), None, "LSR shift");
    }

    #[test]
    fn bl_target() {
        // 0x493e8 CALL runtime.(*timeHistogram).record(SB) = 97ff3df2
        assert_eq!(bl(0x493e8, 0x97ff_3df2), Some(0x493e8 - 4 * 0xc20e));
        assert_eq!(bl(0x27418, 0x9401_28e2), Some(0x27418 + 4 * 0x128e2));
        assert_eq!(bl(0, 0x1400_0033), None, "B, not BL");
    }
}

impl GoBinary {
    /// Addresses of globals that `f` reads with a RIP-relative load (`MOV`/`MOVSXD`/`MOVZX`
    /// from `[rip + disp]`, not `LEA`), in code order. amd64 only (empty elsewhere).
    /// `runtime.GOMAXPROCS` reads `runtime.gomaxprocs` first this way (debug.go: `ret :=
    /// int(gomaxprocs)`), which is how golat finds it in stripped binaries.
    pub fn rip_loads(&self, f: &Function) -> Result<Vec<u64>> {
        if self.arch() != Arch::Amd64 {
            return Ok(Vec::new());
        }
        Ok(decode(f.address, self.code(f)?)
            .iter()
            .filter(|i| {
                matches!(i.mnemonic(), Mnemonic::Mov | Mnemonic::Movsxd | Mnemonic::Movzx)
                    && i.is_ip_rel_memory_operand()
                    && i.op0_kind() == OpKind::Register
            })
            .map(Instruction::ip_rel_memory_address)
            .collect())
    }

    /// Address of a symbol in `.symtab` (functions and data), when the binary has one.
    pub fn symbol_address(&self, name: &str) -> Option<u64> {
        self.symtab().get(name).map(|s| s.address)
    }
}
