//! Reads Go ELF binaries from the outside, for attaching uprobes to a Go program: the Go
//! version and build settings, function addresses and the file offsets a uprobe needs (also in
//! stripped and PIE binaries), the return instructions of a function (exit probes), and the
//! offsets of the runtime struct fields a probe reads (`runtime.g.goid`, ...).
//!
//! Supported: 64-bit little-endian ELF for amd64 and arm64, built by Go 1.17 or later
//! ([`MIN_GO_VERSION`]); internal and external (cgo) linking, position-dependent and PIE,
//! with or without `-s -w`. Everything is read from the file; nothing is executed.
//!
//! ```no_run
//! let bin = gobin::GoBinary::open(std::path::Path::new("/usr/local/bin/app"))?;
//! println!("{} {}", bin.build_info().go_version_raw, bin.arch());
//! let f = bin.function("runtime.casgstatus")?;
//! let rets = bin.return_sites(&f)?;
//! let offsets = bin.struct_offsets()?;
//! println!("uprobe at {:#x}, {} RETs, goid at +{}", f.file_offset, rets.len(), offsets.g_goid.offset);
//! # Ok::<(), gobin::Error>(())
//! ```
//!
//! No input makes this crate panic: a truncated, foreign or corrupt file gives one [`Error`].
//!
//! Tested (this crate's `tests/`) against binaries built here by Go 1.19, 1.21, 1.22, 1.23
//! (Debian) and 1.24, 1.25, 1.26 (official toolchains, via `GOLAT_TEST_GO`), for amd64 and
//! arm64, as exe, `-s -w`, PIE, PIE `-s -w`, cgo PIE (amd64) and PGO (amd64), against
//! `go tool nm` and `go tool objdump`. Go 1.17, 1.18 and 1.20 follow formats read from the Go
//! sources (1.17: pointer build info, 0xFFFFFFFA pclntab; 1.18/1.20 as 1.19/1.21) but no such
//! binary was available to test, and the layout table has no rows for them.

mod buildinfo;
mod calls;
mod data_refs;
mod disasm;
mod dwarf;
mod elf;
mod error;
pub mod layout_table;
mod pclntab;
mod version;

use std::{
    collections::HashMap,
    path::Path,
    sync::OnceLock,
};

use serde::Serialize;

pub use crate::{
    buildinfo::{BuildInfo, BuildInfoSource, Module},
    elf::Arch,
    error::{Error, Result},
    layout_table::{FieldOffset, OffsetSource, StructOffsets},
    pclntab::{PclntabInfo, PclntabVersion, TextStartSource},
    version::{GoVersion, GoVersionKind},
};
use crate::{elf::Elf, pclntab::Pclntab};

/// The oldest Go release this crate reads: Go 1.17 (register ABI on amd64, 0xFFFFFFFA
/// pclntab). Older binaries give [`Error::UnsupportedGoVersion`].
pub const MIN_GO_VERSION: GoVersion = GoVersion::new(1, 17, 0);

/// Where a function's address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    /// The ELF `.symtab` (what `go tool nm` shows).
    Symtab,
    /// The Go function table (works on stripped binaries).
    Pclntab,
}

/// A function of the binary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Function {
    pub name: String,
    /// Link-time virtual address of the entry (for a PIE, add the load bias at run time).
    pub address: u64,
    /// Bytes up to the next function's entry (Go pads functions, so this includes padding).
    pub size: u64,
    /// File offset of the entry: `address - p_vaddr + p_offset` of the executable `PT_LOAD`
    /// holding it. This is what a uprobe is attached at (perf `uprobe` offset).
    pub file_offset: u64,
    pub source: AddressSource,
}

impl Function {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.address.saturating_add(self.size)
    }
}

/// An instruction address with its uprobe file offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Site {
    pub address: u64,
    pub file_offset: u64,
}

/// Everything `golat inspect --json` prints about a binary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub build_info: BuildInfo,
    pub arch: Arch,
    pub pie: bool,
    pub stripped: bool,
    pub dwarf: bool,
    pub cgo: bool,
    pub pgo: bool,
    pub pclntab: PclntabInfo,
}

/// A parsed Go ELF binary. Owns the file's bytes; all queries are answered from memory.
#[derive(Debug)]
pub struct GoBinary {
    data: Vec<u8>,
    elf: Elf,
    build_info: BuildInfo,
    pclntab: Pclntab,
    symtab: OnceLock<HashMap<String, elf::SymInfo>>,
}

impl GoBinary {
    /// Reads and parses the file at `path`. A missing file or a directory gives
    /// [`Error::Io`]; see [`GoBinary::parse`] for the rest.
    pub fn open(path: &Path) -> Result<Self> {
        use std::io::Read as _;
        let io = |source| Error::Io { path: path.to_owned(), source };
        let mut file = std::fs::File::open(path).map_err(io)?;
        // Look at the magic first so a large non-ELF file is not read whole.
        let mut data = Vec::new();
        (&mut file).take(4).read_to_end(&mut data).map_err(io)?;
        if data.as_slice() != object::elf::ELFMAG {
            return Err(Error::NotElf);
        }
        file.read_to_end(&mut data).map_err(io)?;
        Self::parse(data)
    }

    /// Parses a binary already in memory.
    ///
    /// Errors, checked in this order: [`Error::NotElf`], [`Error::Truncated`],
    /// [`Error::UnsupportedArch`], [`Error::Malformed`], [`Error::NotGo`],
    /// [`Error::UnsupportedGoVersion`], [`Error::Unsupported`].
    pub fn parse(data: Vec<u8>) -> Result<Self> {
        let elf = Elf::parse(&data)?;
        let relocs = if elf.e_type == object::elf::ET_DYN { elf.relative_relocs(&data) } else { HashMap::new() };
        let symtab: OnceLock<HashMap<String, elf::SymInfo>> = OnceLock::new();
        let syms = || symtab.get_or_init(|| elf.symtab(&data));

        let build_info = find_build_info(&elf, &data, &relocs);
        if let Some(bi) = &build_info {
            check_version(bi)?;
        }
        let runtime_text = if elf.has_symtab { syms().get("runtime.text").map(|s| s.address) } else { None };
        let cx = pclntab::Context { elf: &elf, data: &data, relocs: &relocs, runtime_text };
        let pclntab = match (Pclntab::find(&cx), &build_info) {
            (Ok(Some(t)), _) => t,
            (Ok(None), Some(_)) => {
                return Err(Error::Malformed("Go build information but no Go function table (pclntab)".into()));
            }
            (Err(e), Some(_)) => return Err(e),
            (Ok(None) | Err(_), None) => return Err(Error::NotGo),
        };
        let build_info = match build_info {
            Some(bi) => bi,
            None => {
                let bi = if elf.has_symtab { build_version_symbol(&elf, &data, &relocs, syms()) } else { None };
                let bi = bi.ok_or_else(|| Error::Unsupported {
                    what: "Go function table found but no Go version (no .go.buildinfo, no runtime.buildVersion)".into(),
                })?;
                check_version(&bi)?;
                bi
            }
        };
        Ok(GoBinary { data, elf, build_info, pclntab, symtab })
    }

    /// The raw file bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Go version, module and build settings.
    pub fn build_info(&self) -> &BuildInfo {
        &self.build_info
    }

    /// Shorthand for `build_info().go_version`.
    pub fn go_version(&self) -> GoVersion {
        self.build_info.go_version
    }

    pub fn arch(&self) -> Arch {
        self.elf.arch
    }

    /// `ET_DYN`: a position-independent executable (`-buildmode=pie`), loaded at a random
    /// bias that must be added to [`Function::address`] (file offsets need no bias).
    pub fn is_pie(&self) -> bool {
        self.elf.e_type == object::elf::ET_DYN
    }

    /// No `.symtab` (`-ldflags=-s`, or `strip`): functions come from the pclntab.
    pub fn is_stripped(&self) -> bool {
        !self.elf.has_symtab
    }

    /// Has `.debug_info` (or `.zdebug_info`): not built with `-ldflags=-w`.
    pub fn has_dwarf(&self) -> bool {
        dwarf::has_dwarf(&self.elf)
    }

    /// Built with cgo: the `CGO_ENABLED=1` build setting (Go 1.18+). Go 1.17 records no
    /// settings; there it is true when the function table has cgo call wrappers
    /// (`._Cfunc_`), i.e. the program itself calls C.
    pub fn cgo(&self) -> bool {
        match self.build_info.setting("CGO_ENABLED") {
            Some(v) => v == "1",
            None => !self.pclntab.view(&self.data).with_prefix("main._Cfunc_").is_empty(),
        }
    }

    /// Built with profile-guided optimisation (a non-empty `-pgo` build setting, Go 1.21+).
    /// PGO can inline functions that are normally never inlined (e.g. `runtime.casgstatus`
    /// into `runtime.execute`), so a probe on them can miss calls.
    pub fn pgo(&self) -> bool {
        self.build_info.setting("-pgo").is_some_and(|v| !v.is_empty())
    }

    /// Where the function table is and how it was read.
    pub fn pclntab_info(&self) -> &PclntabInfo {
        &self.pclntab.info
    }

    /// Plain-data summary for display or JSON.
    pub fn summary(&self) -> Summary {
        Summary {
            build_info: self.build_info.clone(),
            arch: self.arch(),
            pie: self.is_pie(),
            stripped: self.is_stripped(),
            dwarf: self.has_dwarf(),
            cgo: self.cgo(),
            pgo: self.pgo(),
            pclntab: self.pclntab.info.clone(),
        }
    }

    fn symtab(&self) -> &HashMap<String, elf::SymInfo> {
        self.symtab.get_or_init(|| if self.elf.has_symtab { self.elf.symtab(&self.data) } else { HashMap::new() })
    }

    /// Finds a function by its Go symbol name (`runtime.casgstatus`, `main.main`,
    /// `runtime.stopTheWorld.func1`, `main.(*T).M`). Uses `.symtab` when the binary has one
    /// (the same addresses `go tool nm` prints), the pclntab otherwise; the size is always
    /// the distance to the next function in the pclntab when the function is there.
    ///
    /// Names as `go tool nm` prints them work on stripped binaries too: `x.abi0` (ABI0
    /// assembly functions and ABI wrappers, see the pclntab module) and names with type
    /// arguments (`slices.Sort[go.shape.int]`, stored as `slices.Sort[...]`) when only one
    /// function has the abbreviated name.
    pub fn function(&self, name: &str) -> Result<Function> {
        if !self.is_stripped() {
            if let Ok(f) = self.function_from(name, AddressSource::Symtab) {
                return Ok(f);
            }
        }
        self.function_from(name, AddressSource::Pclntab)
    }

    /// Like [`GoBinary::function`] but from one source only (tests compare the two).
    pub fn function_from(&self, name: &str, source: AddressSource) -> Result<Function> {
        let not_found = || Error::FunctionNotFound(name.to_owned());
        let pcln = {
            let v = self.pclntab.view(&self.data);
            v.lookup(name).or_else(|| v.lookup_elided(name))
        };
        let pcln = pcln.and_then(|i| self.pclntab.bounds(i));
        let (address, size) = match source {
            AddressSource::Pclntab => {
                let (start, end) = pcln.ok_or_else(not_found)?;
                (start, end - start)
            }
            AddressSource::Symtab => {
                let sym = self.symtab().get(name).filter(|s| s.is_func).ok_or_else(not_found)?;
                match pcln {
                    Some((start, end)) if start == sym.address => (start, end - start),
                    _ => (sym.address, sym.size),
                }
            }
        };
        let file_offset = self.elf.exec_vaddr_to_offset(address).ok_or(Error::AddressNotMapped { address })?;
        Ok(Function { name: name.to_owned(), address, size, file_offset, source })
    }

    /// All functions of the pclntab, in address order (names that are not UTF-8 or entries
    /// outside the executable segment are skipped).
    pub fn functions(&self) -> impl Iterator<Item = Function> + '_ {
        (0..self.pclntab.len()).filter_map(|i| self.pclntab_function(i))
    }

    /// Functions of the pclntab whose name starts with `prefix`, in name order.
    pub fn functions_matching(&self, prefix: &str) -> Vec<Function> {
        self.pclntab.view(&self.data).with_prefix(prefix).into_iter().filter_map(|i| self.pclntab_function(i)).collect()
    }

    fn pclntab_function(&self, i: usize) -> Option<Function> {
        let name = self.pclntab.view(&self.data).name(i)?;
        let (address, end) = self.pclntab.bounds(i)?;
        Some(Function {
            name: name.to_owned(),
            address,
            size: end - address,
            file_offset: self.elf.exec_vaddr_to_offset(address)?,
            source: AddressSource::Pclntab,
        })
    }

    /// The function's machine code as stored in the file.
    pub fn code(&self, f: &Function) -> Result<&[u8]> {
        self.elf
            .exec_vaddr_to_offset(f.address)
            .and_then(|_| self.elf.read_vaddr(&self.data, f.address, f.size))
            .ok_or(Error::AddressNotMapped { address: f.address })
    }

    /// Every return instruction of `f`, in address order, each with its uprobe file offset
    /// (see the `disasm` module for how they are found). [`Error::NoReturnSites`] when there is
    /// none (the function only tail-calls or never returns).
    pub fn return_sites(&self, f: &Function) -> Result<Vec<Site>> {
        let code = self.code(f)?;
        let sites: Vec<Site> = disasm::return_sites(self.arch(), f.address, code)
            .into_iter()
            .filter_map(|address| Some(Site { address, file_offset: self.elf.exec_vaddr_to_offset(address)? }))
            .collect();
        if sites.is_empty() {
            return Err(Error::NoReturnSites { function: f.name.clone() });
        }
        Ok(sites)
    }

    /// Offsets of the runtime struct fields a probe reads: from DWARF when the binary has it,
    /// else from [`layout_table`] for the binary's Go version ([`Error::UnknownLayout`] when
    /// the table has no entry: never a guess). The result passed
    /// [`StructOffsets::validate`].
    pub fn struct_offsets(&self) -> Result<StructOffsets> {
        let offsets = if self.has_dwarf() {
            match self.struct_offsets_from_dwarf()? {
                Some(o) => o,
                None => self.struct_offsets_from_table()?,
            }
        } else {
            self.struct_offsets_from_table()?
        };
        offsets.validate()?;
        Ok(offsets)
    }

    /// Offsets from DWARF only: `Ok(None)` when the binary has no DWARF or it lacks one of
    /// the fields.
    pub fn struct_offsets_from_dwarf(&self) -> Result<Option<StructOffsets>> {
        if !self.has_dwarf() {
            return Ok(None);
        }
        let layouts = dwarf::struct_layouts(&self.data, layout_table::STRUCTS)?;
        Ok(StructOffsets::from_dwarf(&layouts))
    }

    /// Offsets from [`layout_table`] only.
    pub fn struct_offsets_from_table(&self) -> Result<StructOffsets> {
        layout_table::lookup(&self.build_info, self.arch())
    }
}

/// The name the pclntab stores for a symbol name: the Go linker abbreviates everything from
/// the first `[` to the last `]` as `[...]` (type arguments of generic functions, array
/// lengths in `type..eq.[5]T`), as in `nameParts` in src/cmd/link/internal/ld/pcln.go
/// (go1.18+). Names without brackets are returned unchanged.
pub fn elide_type_args(name: &str) -> String {
    match (name.find('['), name.rfind(']')) {
        (Some(i), Some(j)) if j > i => format!("{}[...]{}", &name[..i], &name[j + 1..]),
        _ => name.to_owned(),
    }
}

fn check_version(bi: &BuildInfo) -> Result<()> {
    if bi.go_version < MIN_GO_VERSION {
        return Err(Error::UnsupportedGoVersion { found: bi.go_version_raw.clone(), min: MIN_GO_VERSION });
    }
    Ok(())
}

/// A pointer-sized word at `vaddr`, with the RELATIVE relocation's addend when the file has 0.
fn read_ptr(elf: &Elf, data: &[u8], relocs: &HashMap<u64, u64>, vaddr: u64) -> Option<u64> {
    let b = elf.read_vaddr(data, vaddr, 8)?;
    let v = u64::from_le_bytes(b.try_into().ok()?);
    if v == 0 {
        if let Some(&a) = relocs.get(&vaddr) {
            return Some(a);
        }
    }
    Some(v)
}

fn find_build_info(elf: &Elf, data: &[u8], relocs: &HashMap<u64, u64>) -> Option<BuildInfo> {
    // debug/buildinfo: the .go.buildinfo section, else the first writable, non-executable
    // PT_LOAD.
    let start = match elf.section(".go.buildinfo") {
        Some(s) => s.addr,
        None => {
            elf.segments
                .iter()
                .find(|s| s.flags & (object::elf::PF_X | object::elf::PF_W) == object::elf::PF_W)?
                .vaddr
        }
    };
    let blob = elf.vaddr_tail(data, start)?;
    let rp = |a: u64| read_ptr(elf, data, relocs, a);
    let rb = |a: u64, n: u64| elf.read_vaddr(data, a, n).map(<[u8]>::to_vec);
    let (version, modinfo, source) = buildinfo::decode_blob(blob, &rp, &rb, start)?;
    BuildInfo::from_strings(&version, &modinfo, source)
}

/// Fallback: the `runtime.buildVersion` Go string (a {data, len} header in the data segment).
fn build_version_symbol(
    elf: &Elf,
    data: &[u8],
    relocs: &HashMap<u64, u64>,
    syms: &HashMap<String, elf::SymInfo>,
) -> Option<BuildInfo> {
    let hdr = syms.get("runtime.buildVersion")?.address;
    let ptr = read_ptr(elf, data, relocs, hdr)?;
    let len = read_ptr(elf, data, relocs, hdr.checked_add(8)?)?;
    if len > 256 {
        return None;
    }
    let bytes = elf.read_vaddr(data, ptr, len)?;
    let version = std::str::from_utf8(bytes).ok()?;
    BuildInfo::from_strings(version, "", BuildInfoSource::BuildVersionSymbol)
}
