//! Return instructions of a function, for exit probes placed as uprobes on each RET (Go's
//! moving stacks make uretprobes unsafe).

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

use crate::elf::Arch;

/// Addresses of the return instructions in `code`, which starts at `address`.
///
/// - amd64: linear decode with iced-x86 from the entry to the end (a `0xC3` byte can sit inside
///   another instruction, so byte scanning is wrong); every `RET`/`RET imm16` (`C3`/`C2`, with
///   or without prefixes such as `REP`) counts. Go emits no data in amd64 text.
/// - arm64: every 4-byte-aligned word that encodes `RET Xn` (`0xd65f0000 | n << 5`, normally
///   `0xd65f03c0` = `RET X30`) or the pointer-authenticating `RETAA`/`RETAB`.
pub(crate) fn return_sites(arch: Arch, address: u64, code: &[u8]) -> Vec<u64> {
    match arch {
        Arch::Amd64 => amd64_insns(address, code).filter(|i| i.mnemonic() == Mnemonic::Ret).map(|i| i.ip()).collect(),
        Arch::Arm64 => arm64_words(address, code).filter_map(|(pc, word)| is_arm64_ret(word).then_some(pc)).collect(),
    }
}

/// Every amd64 instruction of `code` (which starts at `address`), decoded linearly.
pub(crate) fn amd64_insns(address: u64, code: &[u8]) -> impl Iterator<Item = iced_x86::Instruction> + '_ {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    std::iter::from_fn(move || decoder.can_decode().then(|| decoder.decode()))
}

/// (address, instruction word) of every 4-byte-aligned arm64 instruction in `code`, which
/// starts at `address` (instructions are 4-byte aligned in the address space).
pub(crate) fn arm64_words(address: u64, code: &[u8]) -> impl Iterator<Item = (u64, u32)> + '_ {
    let skip = ((4 - (address % 4)) % 4) as usize;
    code.get(skip..).unwrap_or_default().chunks_exact(4).enumerate().map(move |(i, w)| {
        (address + skip as u64 + 4 * i as u64, u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    })
}

/// `RET Xn` (C6.2.254 in the Arm ARM: `1101011 0 0 10 11111 0000 0 0 Rn 00000`), `RETAA`
/// (`0xd65f0bff`), `RETAB` (`0xd65f0fff`).
fn is_arm64_ret(word: u32) -> bool {
    word & 0xffff_fc1f == 0xd65f_0000 || word == 0xd65f_0bff || word == 0xd65f_0fff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd64_decodes_instead_of_scanning() {
        // mov eax, 0xc3c3c3c3 ; ret ; ret 8 ; rep ret ; int3
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc2, 0x08, 0x00, 0xf3, 0xc3, 0xcc];
        assert_eq!(return_sites(Arch::Amd64, 0x1000, &code), vec![0x1005, 0x1006, 0x1009]);
        // Truncated instruction at the end: no panic, nothing found.
        assert!(return_sites(Arch::Amd64, 0, &[0x48, 0x8b]).is_empty());
    }

    #[test]
    fn arm64_words() {
        let words: [u32; 5] = [0xd503201f, 0xd65f03c0, 0xd65f0020, 0xd65f0bff, 0xd61f0200];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(return_sites(Arch::Arm64, 0x2000, &code), vec![0x2004, 0x2008, 0x200c]);
        // Unaligned start and a trailing partial word.
        assert_eq!(return_sites(Arch::Arm64, 0x2002, &code[2..19]), vec![0x2004, 0x2008, 0x200c]);
    }
}
