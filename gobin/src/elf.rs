//! The parts of an ELF file this crate needs, copied out of the file into owned structs, with
//! every range checked against the file's length up front so later reads cannot go out of
//! bounds (they still use checked slicing).

use std::collections::HashMap;

use object::{
    LittleEndian as LE,
    elf,
    read::elf::{FileHeader as _, ProgramHeader as _, SectionHeader as _, Sym as _},
};
use serde::Serialize;

use crate::error::{Error, Result};

/// Target architecture of a Go binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86-64 (`EM_X86_64`, `GOARCH=amd64`).
    Amd64,
    /// AArch64 (`EM_AARCH64`, `GOARCH=arm64`).
    Arm64,
}

impl Arch {
    /// The `GOARCH` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The pclntab's `minLC` ("instruction size quantum") for this architecture.
    pub(crate) fn pc_quantum(self) -> u8 {
        match self {
            Arch::Amd64 => 1,
            Arch::Arm64 => 4,
        }
    }

    /// `R_X86_64_RELATIVE` / `R_AARCH64_RELATIVE`.
    fn relative_reloc_type(self) -> u32 {
        match self {
            Arch::Amd64 => elf::R_X86_64_RELATIVE,
            Arch::Arm64 => elf::R_AARCH64_RELATIVE,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub flags: u32,
}

impl Segment {
    pub fn is_exec(&self) -> bool {
        self.flags & elf::PF_X != 0
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub name: String,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub sh_type: u32,
    pub flags: u64,
}

impl Section {
    /// Whether the section occupies bytes in the file.
    pub fn has_file_data(&self) -> bool {
        self.sh_type != elf::SHT_NOBITS && self.sh_type != elf::SHT_NULL
    }
}

/// A defined symbol from `.symtab`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SymInfo {
    pub address: u64,
    pub size: u64,
    pub is_func: bool,
}

/// Owned view of an ELF64 little-endian file.
#[derive(Debug)]
pub(crate) struct Elf {
    pub arch: Arch,
    pub e_type: u16,
    /// `PT_LOAD` segments, in file order.
    pub segments: Vec<Segment>,
    pub sections: Vec<Section>,
    pub has_symtab: bool,
}

fn truncated(what: &'static str, needed: u64, len: usize) -> Error {
    Error::Truncated { what, needed, len: len as u64 }
}

fn machine_name(machine: u16) -> String {
    let name = match machine {
        elf::EM_386 => "i386",
        elf::EM_ARM => "arm",
        elf::EM_PPC64 => "ppc64",
        elf::EM_S390 => "s390x",
        elf::EM_RISCV => "riscv",
        elf::EM_MIPS => "mips",
        elf::EM_LOONGARCH => "loong64",
        _ => return format!("ELF machine {machine}"),
    };
    name.to_owned()
}

impl Elf {
    pub fn parse(data: &[u8]) -> Result<Elf> {
        let len = data.len();
        if data.get(..4) != Some(&elf::ELFMAG[..]) {
            return Err(Error::NotElf);
        }
        let ident = data.get(..20).ok_or_else(|| truncated("ELF identification", 20, len))?;
        let class = ident[4];
        let data_enc = ident[5];
        let machine = match data_enc {
            elf::ELFDATA2LSB => u16::from_le_bytes([ident[18], ident[19]]),
            elf::ELFDATA2MSB => u16::from_be_bytes([ident[18], ident[19]]),
            other => return Err(Error::Malformed(format!("bad ELF data encoding {other}"))),
        };
        if class != elf::ELFCLASS64 {
            return Err(Error::UnsupportedArch(format!("32-bit {}", machine_name(machine))));
        }
        if data_enc != elf::ELFDATA2LSB {
            return Err(Error::UnsupportedArch(format!("big-endian {}", machine_name(machine))));
        }
        let arch = match machine {
            elf::EM_X86_64 => Arch::Amd64,
            elf::EM_AARCH64 => Arch::Arm64,
            m => return Err(Error::UnsupportedArch(machine_name(m))),
        };
        let header_size = std::mem::size_of::<elf::FileHeader64<LE>>();
        if len < header_size {
            return Err(truncated("ELF header", header_size as u64, len));
        }
        let header = elf::FileHeader64::<LE>::parse(data).map_err(|e| Error::Malformed(e.to_string()))?;
        let endian = LE;

        // Check table extents ourselves first so a cut file says "truncated", not "malformed".
        let phoff = header.e_phoff.get(endian);
        let phnum = u64::from(header.e_phnum.get(endian));
        let phentsize = u64::from(header.e_phentsize.get(endian));
        let ph_end = phnum.checked_mul(phentsize).and_then(|n| n.checked_add(phoff));
        match ph_end {
            Some(end) if end <= len as u64 => {}
            Some(end) => return Err(truncated("program header table", end, len)),
            None => return Err(Error::Malformed("program header table size overflows".into())),
        }
        let shoff = header.e_shoff.get(endian);
        let shnum = u64::from(header.e_shnum.get(endian));
        let shentsize = u64::from(header.e_shentsize.get(endian));
        if shoff != 0 {
            // shnum == 0 with shoff != 0 means extended numbering: at least section 0 exists.
            let n = shnum.max(1);
            match n.checked_mul(shentsize).and_then(|n| n.checked_add(shoff)) {
                Some(end) if end <= len as u64 => {}
                Some(end) => return Err(truncated("section header table", end, len)),
                None => return Err(Error::Malformed("section header table size overflows".into())),
            }
        }

        let phdrs = header.program_headers(endian, data).map_err(|e| Error::Malformed(e.to_string()))?;
        let mut segments = Vec::new();
        for ph in phdrs {
            if ph.p_type(endian) != elf::PT_LOAD {
                continue;
            }
            let seg = Segment {
                vaddr: ph.p_vaddr(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                flags: ph.p_flags(endian),
            };
            match seg.offset.checked_add(seg.filesz) {
                Some(end) if end <= len as u64 => {}
                Some(end) => return Err(truncated("a PT_LOAD segment", end, len)),
                None => return Err(Error::Malformed("segment size overflows".into())),
            }
            if seg.vaddr.checked_add(seg.filesz).is_none() {
                return Err(Error::Malformed("segment address overflows".into()));
            }
            segments.push(seg);
        }

        // Section data extents first (the name table is a section too).
        let shdrs = header.section_headers(endian, data).map_err(|e| Error::Malformed(e.to_string()))?;
        for sh in shdrs {
            let t = sh.sh_type(endian);
            if t == elf::SHT_NOBITS || t == elf::SHT_NULL {
                continue;
            }
            match sh.sh_offset(endian).checked_add(sh.sh_size(endian)) {
                Some(end) if end <= len as u64 => {}
                Some(end) => return Err(truncated("a section", end, len)),
                None => return Err(Error::Malformed("section size overflows".into())),
            }
        }
        let table = header.sections(endian, data).map_err(|e| Error::Malformed(e.to_string()))?;
        let mut sections = Vec::new();
        let mut has_symtab = false;
        for sh in table.iter() {
            let name = table.section_name(endian, sh).map_err(|e| Error::Malformed(e.to_string()))?;
            let sec = Section {
                name: String::from_utf8_lossy(name).into_owned(),
                addr: sh.sh_addr(endian),
                offset: sh.sh_offset(endian),
                size: sh.sh_size(endian),
                sh_type: sh.sh_type(endian),
                flags: sh.sh_flags(endian),
            };
            if sec.has_file_data() {
                match sec.offset.checked_add(sec.size) {
                    Some(end) if end <= len as u64 => {}
                    Some(end) => return Err(truncated("a section", end, len)),
                    None => return Err(Error::Malformed(format!("section {} size overflows", sec.name))),
                }
            }
            if sec.sh_type == elf::SHT_SYMTAB && sec.size > 0 {
                has_symtab = true;
            }
            sections.push(sec);
        }
        Ok(Elf { arch, e_type: header.e_type.get(endian), segments, sections, has_symtab })
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// File bytes of a section (empty for `SHT_NOBITS`).
    pub fn section_data<'d>(&self, data: &'d [u8], sec: &Section) -> &'d [u8] {
        if !sec.has_file_data() {
            return &[];
        }
        slice(data, sec.offset, sec.size).unwrap_or(&[])
    }

    /// The `PT_LOAD` segment whose file-backed part contains `vaddr`.
    pub fn segment_for(&self, vaddr: u64) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
    }

    /// File offset of `vaddr` (any file-backed `PT_LOAD`).
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        let s = self.segment_for(vaddr)?;
        Some(vaddr - s.vaddr + s.offset)
    }

    /// File offset of `vaddr` within an executable `PT_LOAD`: what a uprobe attach needs.
    pub fn exec_vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        let s = self.segments.iter().find(|s| s.is_exec() && vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)?;
        Some(vaddr - s.vaddr + s.offset)
    }

    /// `len` file bytes starting at `vaddr`, if they are all inside one segment's file data.
    pub fn read_vaddr<'d>(&self, data: &'d [u8], vaddr: u64, len: u64) -> Option<&'d [u8]> {
        let s = self.segment_for(vaddr)?;
        let rel = vaddr - s.vaddr;
        if len > s.filesz - rel {
            return None;
        }
        slice(data, s.offset + rel, len)
    }

    /// The file bytes of the segment containing `vaddr`, from `vaddr` to the segment's end.
    pub fn vaddr_tail<'d>(&self, data: &'d [u8], vaddr: u64) -> Option<&'d [u8]> {
        let s = self.segment_for(vaddr)?;
        let rel = vaddr - s.vaddr;
        slice(data, s.offset + rel, s.filesz - rel)
    }

    /// Targets of `R_*_RELATIVE` dynamic relocations: relocated address -> addend. In a PIE the
    /// loader writes `base + addend` there; the file may hold 0 or the addend.
    pub fn relative_relocs(&self, data: &[u8]) -> HashMap<u64, u64> {
        let want = self.arch.relative_reloc_type();
        let mut out = HashMap::new();
        for sec in &self.sections {
            if sec.sh_type != elf::SHT_RELA || sec.flags & u64::from(elf::SHF_ALLOC) == 0 {
                continue;
            }
            for rela in self.section_data(data, sec).chunks_exact(24) {
                let word = |i: usize| {
                    rela.get(i..i + 8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(u64::from_le_bytes)
                        .unwrap_or(0)
                };
                let (r_offset, r_info, r_addend) = (word(0), word(8), word(16));
                if (r_info & 0xffff_ffff) as u32 == want {
                    out.entry(r_offset).or_insert(r_addend);
                }
            }
        }
        out
    }

    /// Defined symbols of `.symtab` by name (first definition wins), or an empty map.
    pub fn symtab(&self, data: &[u8]) -> HashMap<String, SymInfo> {
        let mut out = HashMap::new();
        let endian = LE;
        let Ok(header) = elf::FileHeader64::<LE>::parse(data) else { return out };
        let Ok(table) = header.sections(endian, data) else { return out };
        let Ok(symbols) = table.symbols(endian, data, elf::SHT_SYMTAB) else { return out };
        for sym in symbols.iter() {
            if sym.st_shndx(endian) == elf::SHN_UNDEF {
                continue;
            }
            let Ok(name) = symbols.symbol_name(endian, sym) else { continue };
            if name.is_empty() {
                continue;
            }
            let Ok(name) = std::str::from_utf8(name) else { continue };
            out.entry(name.to_owned()).or_insert(SymInfo {
                address: sym.st_value(endian),
                size: sym.st_size(endian),
                is_func: sym.st_type() == elf::STT_FUNC,
            });
        }
        out
    }
}

/// `data[offset..offset + len]`, with overflow and bounds checks.
pub(crate) fn slice(data: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(len).ok()?;
    data.get(start..start.checked_add(len)?)
}

pub(crate) fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

pub(crate) fn u64_at(data: &[u8], off: usize) -> Option<u64> {
    let b = data.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}
