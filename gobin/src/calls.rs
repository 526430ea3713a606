//! Direct call sites: where a function calls another, as the address of the instruction right
//! after the call (the return address). A uprobe there sees the callee's results, which is how
//! golat reads the `nanotime()` value a Go <= 1.21 runtime takes before and after a GC pause
//! without a return probe.

use iced_x86::Mnemonic;

use crate::{Arch, Error, Function, GoBinary, Result, Site};

/// Return addresses of direct calls to `target` inside `code` (which starts at `address`).
pub(crate) fn call_return_addresses(arch: Arch, address: u64, code: &[u8], target: u64) -> Vec<u64> {
    match arch {
        Arch::Amd64 => crate::disasm::amd64_insns(address, code)
            .filter(|i| i.mnemonic() == Mnemonic::Call && i.near_branch_target() == target)
            .map(|i| i.next_ip())
            .collect(),
        Arch::Arm64 => crate::disasm::arm64_words(address, code)
            .filter_map(|(pc, word)| {
                // BL imm26: 100101 imm26; target = pc + sign_extend(imm26) * 4.
                if word & 0xfc00_0000 != 0x9400_0000 {
                    return None;
                }
                let imm = ((word & 0x03ff_ffff) << 6) as i32 >> 6;
                let dest = pc.wrapping_add_signed(i64::from(imm) * 4);
                (dest == target).then_some(pc + 4)
            })
            .collect(),
    }
}

impl GoBinary {
    /// Every direct call from `caller` to `callee`, as the site right after the call, in
    /// address order. [`Error::FunctionNotFound`] names the callee when there is none.
    pub fn call_return_sites(&self, caller: &Function, callee: &Function) -> Result<Vec<Site>> {
        let code = self.code(caller)?;
        let sites: Vec<Site> = call_return_addresses(self.arch(), caller.address, code, callee.address)
            .into_iter()
            .filter_map(|address| Some(Site { address, file_offset: self.elf.exec_vaddr_to_offset(address)? }))
            .collect();
        if sites.is_empty() {
            return Err(Error::FunctionNotFound(format!("call to {} in {}", callee.name, caller.name)));
        }
        Ok(sites)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd64_direct_calls() {
        // call +5 (to 0x100a) ; nop ; call -0x0b (to 0x1000)
        let code = [0xe8, 0x05, 0x00, 0x00, 0x00, 0x90, 0xe8, 0xf5, 0xff, 0xff, 0xff];
        assert_eq!(call_return_addresses(Arch::Amd64, 0x1000, &code, 0x100a), vec![0x1005]);
        assert_eq!(call_return_addresses(Arch::Amd64, 0x1000, &code, 0x1000), vec![0x100b]);
        assert!(call_return_addresses(Arch::Amd64, 0x1000, &code, 0x2000).is_empty());
    }

    #[test]
    fn arm64_bl() {
        // bl +8 ; nop ; bl -8
        let words: [u32; 3] = [0x9400_0002, 0xd503_201f, 0x97ff_fffe];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(call_return_addresses(Arch::Arm64, 0x4000, &code, 0x4008), vec![0x4004]);
        assert_eq!(call_return_addresses(Arch::Arm64, 0x4000, &code, 0x4000), vec![0x400c]);
    }
}
