//! The Go function table ("pclntab"), which every Go binary keeps for the runtime's stack
//! walks and which `-s -w` does not remove: function names and entry addresses of stripped
//! binaries come from here.
//!
//! Layout, from `pcHeader`, `functab` and `_func` in src/runtime/symtab.go and from
//! src/debug/gosym/pclntab.go (`go116magic`, `go118magic`, `go120magic`) at go1.16.0, go1.18.0
//! and go1.22.0; checked against binaries built by go1.19.8, go1.21.13, go1.22.12 and go1.23.5
//! (amd64, arm64; exe, PIE, external-link PIE; with and without `-s -w`) in this crate's tests:
//!
//! ```text
//! pcHeader (all offsets below are from the header's start):
//!  +0  magic u32     0xFFFFFFFB Go 1.2–1.15 (not supported), 0xFFFFFFFA Go 1.16/1.17,
//!                    0xFFFFFFF0 Go 1.18/1.19, 0xFFFFFFF1 Go 1.20+
//!  +4  pad1, pad2 u8 always 0
//!  +6  minLC u8      instruction size quantum: 1 on amd64, 4 on arm64
//!  +7  ptrSize u8    8
//!  +8  nfunc int
//! +16  nfiles uint
//!      Go 1.18+:           Go 1.16/1.17:
//! +24  textStart uintptr   funcnameOffset      (textStart is relocated in a PIE)
//! +32  funcnameOffset      cuOffset
//! +40  cuOffset            filetabOffset
//! +48  filetabOffset       pctabOffset
//! +56  pctabOffset         pclnOffset
//! +64  pclnOffset
//!
//! functab at pclnOffset, sorted by entry, nfunc entries then one end-of-text entry:
//!   Go 1.18+:     {entryOff u32, funcOff u32} ... entryOff(end) u32; entry = textStart + entryOff
//!   Go 1.16/1.17: {entry uintptr, funcOff uintptr} ... entry(end) uintptr (absolute, relocated
//!                 in a PIE)
//! _func at pclnOffset + funcOff:
//!   Go 1.18+:     {entryOff u32, nameOff i32, ...}
//!   Go 1.16/1.17: {entry uintptr, nameOff i32, ...}
//! name: NUL-terminated at funcnameOffset + nameOff
//! ```
//!
//! Where the table is: `.gopclntab` (internal linking), `.data.rel.ro.gopclntab` (internal-link
//! PIE), or no section of its own in external-link builds (inside `.data.rel.ro` or `.rodata`),
//! where we scan for the header at 8-byte-aligned addresses and validate it.

use std::{cmp::Ordering, collections::HashMap, sync::OnceLock};

use serde::Serialize;

use crate::{
    elf::{Arch, Elf, u32_at, u64_at},
    error::{Error, Result},
};

pub(crate) const MAGIC_12: u32 = 0xFFFF_FFFB;
pub(crate) const MAGIC_116: u32 = 0xFFFF_FFFA;
pub(crate) const MAGIC_118: u32 = 0xFFFF_FFF0;
pub(crate) const MAGIC_120: u32 = 0xFFFF_FFF1;

/// The pclntab format generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PclntabVersion {
    /// Go 1.16 and 1.17 (magic 0xFFFFFFFA).
    Go116,
    /// Go 1.18 and 1.19 (magic 0xFFFFFFF0).
    Go118,
    /// Go 1.20 and later (magic 0xFFFFFFF1).
    Go120,
}

/// Where the pclntab was found and what its header says (for `golat inspect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PclntabInfo {
    pub version: PclntabVersion,
    /// Section holding the table, or `"<scan of NAME>"` when found by scanning inside NAME.
    pub location: String,
    /// Virtual address of the header.
    pub address: u64,
    /// File offset of the header.
    pub file_offset: u64,
    pub nfunc: usize,
    /// Address the function table's offsets are relative to (Go 1.18+; for 1.16/1.17 the first
    /// function's entry).
    pub text_start: u64,
    /// How `text_start` was obtained.
    pub text_start_source: TextStartSource,
}

/// How the pclntab's `textStart` was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextStartSource {
    /// The header word as stored in the file.
    Header,
    /// The file holds 0 there; the addend of the `R_*_RELATIVE` dynamic relocation for it.
    Relocation,
    /// Neither: the `runtime.text` symbol.
    RuntimeTextSymbol,
    /// Neither, no symbols: the `text` field of `runtime.firstmoduledata`, found as the data
    /// word that points at the pclntab header (Go 1.26 stores 0 in the header).
    Moduledata,
    /// Neither, no symbols, internal linking: the start of `.text`.
    TextSection,
    /// Go 1.16/1.17 tables hold absolute entries.
    NotApplicable,
}

#[derive(Debug)]
pub(crate) struct Pclntab {
    pub info: PclntabInfo,
    /// File range from the header to the end of the containing segment (the bytes stay in
    /// the caller's buffer; see [`Pclntab::view`]).
    range: (usize, usize),
    funcname_off: usize,
    pcln_off: usize,
    /// nfunc + 1 absolute entry addresses (the last one is the end of the text).
    entries: Vec<u64>,
    /// Function indices sorted by name, built on first lookup.
    by_name: OnceLock<Vec<u32>>,
}

/// What the caller knows that helps resolve relocated words.
pub(crate) struct Context<'a> {
    pub elf: &'a Elf,
    pub data: &'a [u8],
    pub relocs: &'a HashMap<u64, u64>,
    pub runtime_text: Option<u64>,
}

impl Context<'_> {
    /// A pointer-sized word at `vaddr`, or the RELATIVE relocation's addend if the file has 0.
    fn word(&self, vaddr: u64) -> Option<(u64, bool)> {
        let off = usize::try_from(self.elf.vaddr_to_offset(vaddr)?).ok()?;
        let v = u64_at(self.data, off)?;
        if v == 0 {
            if let Some(&a) = self.relocs.get(&vaddr) {
                return Some((a, true));
            }
        }
        Some((v, false))
    }
}

/// `moduledata.text` of the module whose pclntab header is at `header`: the 8-aligned data
/// word equal to `header` (`moduledata.pcHeader`, the first field) followed by the
/// `funcnametab` slice pointing at `funcnametab`; `text` is at +176 (after pcHeader, six
/// slices, findfunctab, minpc, maxpc: `moduledata` in src/runtime/symtab.go, go1.16–go1.26).
fn moduledata_text(cx: &Context<'_>, header: u64, funcnametab: u64) -> Option<u64> {
    for seg in cx.elf.segments.iter().filter(|s| !s.is_exec() && s.flags & object::elf::PF_W != 0) {
        let start = seg.vaddr.checked_add((8 - seg.vaddr % 8) % 8)?;
        let end = seg.vaddr.checked_add(seg.filesz)?;
        let mut at = start;
        while at.checked_add(192).is_some_and(|e| e <= end) {
            if cx.word(at).is_some_and(|(w, _)| w == header)
                && cx.word(at + 8).is_some_and(|(w, _)| w == funcnametab)
            {
                let text = cx.word(at + 176)?.0;
                let etext = cx.word(at + 184)?.0;
                if text != 0 && text < etext {
                    return Some(text);
                }
            }
            at += 8;
        }
    }
    None
}

/// Header bytes 4..8 we accept: zero pads, `minLC`, `ptrSize` 8.
fn header_ok(h: &[u8], arch: Arch) -> bool {
    h.get(4..8) == Some(&[0, 0, arch.pc_quantum(), 8][..])
}

impl Pclntab {
    /// Finds and validates the pclntab. `Ok(None)` when there is none.
    pub fn find(cx: &Context<'_>) -> Result<Option<Pclntab>> {
        let mut first_err = None;
        for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
            if let Some(sec) = cx.elf.section(name) {
                match Self::parse_at(cx, sec.addr, name.to_owned()) {
                    Ok(t) => return Ok(Some(t)),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        // External linking: no section of its own. Scan likely sections, then (no section
        // headers at all) the non-executable segments.
        let mut regions: Vec<(u64, String)> = Vec::new();
        for name in [".data.rel.ro", ".rodata", ".noptrdata", ".data"] {
            if let Some(sec) = cx.elf.section(name) {
                if sec.has_file_data() {
                    regions.push((sec.addr, name.to_owned()));
                }
            }
        }
        if cx.elf.sections.is_empty() {
            for seg in cx.elf.segments.iter().filter(|s| !s.is_exec()) {
                regions.push((seg.vaddr, format!("segment at {:#x}", seg.vaddr)));
            }
        }
        for (start, name) in regions {
            let Some(bytes) = cx.elf.vaddr_tail(cx.data, start) else { continue };
            let skip = ((8 - (start % 8)) % 8) as usize;
            let mut off = skip;
            while let Some(h) = bytes.get(off..off + 8) {
                let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                if matches!(magic, MAGIC_116 | MAGIC_118 | MAGIC_120 | MAGIC_12) && header_ok(h, cx.elf.arch) {
                    match Self::parse_at(cx, start + off as u64, format!("<scan of {name}>")) {
                        Ok(t) => return Ok(Some(t)),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                off += 8;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    fn parse_at(cx: &Context<'_>, vaddr: u64, location: String) -> Result<Pclntab> {
        let loc = location.clone();
        let bad = |what: &str| Error::Malformed(format!("pclntab at {vaddr:#x} ({loc}): {what}"));
        let table = cx.elf.vaddr_tail(cx.data, vaddr).ok_or_else(|| bad("not in the file"))?;
        let file_offset = cx.elf.vaddr_to_offset(vaddr).ok_or_else(|| bad("not in the file"))?;
        let magic = u32_at(table, 0).ok_or_else(|| bad("too short"))?;
        let version = match magic {
            MAGIC_116 => PclntabVersion::Go116,
            MAGIC_118 => PclntabVersion::Go118,
            MAGIC_120 => PclntabVersion::Go120,
            MAGIC_12 => {
                return Err(Error::Unsupported { what: "Go 1.2–1.15 function table (magic 0xFFFFFFFB)".into() });
            }
            m => return Err(bad(&format!("bad magic {m:#x}"))),
        };
        if !header_ok(table, cx.elf.arch) {
            return Err(bad("bad header (pad, minLC or ptrSize)"));
        }
        let word = |i: usize| u64_at(table, 8 + 8 * i).ok_or_else(|| bad("header too short"));
        let as_off = |v: u64| -> Result<usize> {
            usize::try_from(v).ok().filter(|&o| o < table.len()).ok_or_else(|| bad("offset out of range"))
        };
        let nfunc = usize::try_from(word(0)?).map_err(|_| bad("nfunc"))?;
        let (text_start, text_start_source, funcname_off, pcln_off) = match version {
            PclntabVersion::Go116 => (0, TextStartSource::NotApplicable, as_off(word(2)?)?, as_off(word(6)?)?),
            PclntabVersion::Go118 | PclntabVersion::Go120 => {
                let field = vaddr + 24;
                let (mut ts, relocated) = cx.word(field).ok_or_else(|| bad("textStart unreadable"))?;
                let mut src = if relocated { TextStartSource::Relocation } else { TextStartSource::Header };
                if ts == 0 {
                    // Go 1.26 no longer stores textStart ("it requires a relocation";
                    // src/runtime/symtab.go at go1.26.0): the runtime uses moduledata.text.
                    let funcnametab = vaddr.checked_add(word(3)?);
                    if let Some(t) = cx.runtime_text {
                        ts = t;
                        src = TextStartSource::RuntimeTextSymbol;
                    } else if let Some(t) = funcnametab.and_then(|f| moduledata_text(cx, vaddr, f)) {
                        ts = t;
                        src = TextStartSource::Moduledata;
                    } else if let Some(t) = cx.elf.section(".text").filter(|_| cx.elf.section(".init").is_none()) {
                        // Internal linking puts runtime.text at the start of .text; external
                        // linking (which always has .init) puts C startup code first.
                        ts = t.addr;
                        src = TextStartSource::TextSection;
                    }
                }
                (ts, src, as_off(word(3)?)?, as_off(word(7)?)?)
            }
        };
        let entry_size: usize = match version {
            PclntabVersion::Go116 => 16,
            _ => 8,
        };
        if nfunc == 0 || nfunc.checked_mul(entry_size).is_none_or(|n| n > table.len()) {
            return Err(bad("nfunc out of range"));
        }
        let mut entries = Vec::with_capacity(nfunc + 1);
        for i in 0..=nfunc {
            let at = pcln_off + i * entry_size;
            let e = match version {
                PclntabVersion::Go116 => cx.word(vaddr + at as u64).map(|(w, _)| w),
                _ => u32_at(table, at).and_then(|o| text_start.checked_add(u64::from(o))),
            }
            .ok_or_else(|| bad("function table runs past the end"))?;
            if entries.last().is_some_and(|&prev| e < prev) {
                return Err(bad("function table is not sorted"));
            }
            entries.push(e);
        }
        // The whole text must sit in one executable segment.
        let (first, end) = (entries[0], entries[nfunc]);
        let seg = cx
            .elf
            .segments
            .iter()
            .find(|s| s.is_exec() && first >= s.vaddr && first - s.vaddr < s.filesz)
            .ok_or_else(|| bad(&format!("first function {first:#x} is not in an executable segment (textStart {text_start:#x})")))?;
        if end - seg.vaddr > seg.filesz {
            return Err(bad("text end is outside the executable segment"));
        }
        let text_start = if version == PclntabVersion::Go116 { first } else { text_start };
        let tab = Pclntab {
            info: PclntabInfo {
                version,
                location,
                address: vaddr,
                file_offset,
                nfunc,
                text_start,
                text_start_source,
            },
            range: {
                let start = usize::try_from(file_offset).map_err(|_| bad("offset"))?;
                (start, start + table.len())
            },
            funcname_off,
            pcln_off,
            entries,
            by_name: OnceLock::new(),
        };
        // The first function must have a readable name.
        if tab.view(cx.data).name_bytes(0).is_none_or(|n| n.is_empty()) {
            return Err(bad("first function has no name"));
        }
        Ok(tab)
    }

    pub fn len(&self) -> usize {
        self.info.nfunc
    }

    /// `(entry, end)` of function `i`: end is the next function's entry.
    pub fn bounds(&self, i: usize) -> Option<(u64, u64)> {
        Some((*self.entries.get(i)?, *self.entries.get(i + 1)?))
    }

    /// Accessor over the caller's file bytes (`data` must be the buffer this table was
    /// parsed from).
    pub fn view<'a>(&'a self, data: &'a [u8]) -> View<'a> {
        View { t: self, table: data.get(self.range.0..self.range.1).unwrap_or_default() }
    }
}

/// A [`Pclntab`] together with the file bytes it describes.
pub(crate) struct View<'a> {
    t: &'a Pclntab,
    table: &'a [u8],
}

impl<'a> View<'a> {
    /// Raw name bytes of function `i`.
    pub fn name_bytes(&self, i: usize) -> Option<&'a [u8]> {
        let entry_size = if self.t.info.version == PclntabVersion::Go116 { 16 } else { 8 };
        let funcoff_at = self.t.pcln_off.checked_add(i.checked_mul(entry_size)?)?.checked_add(entry_size / 2)?;
        let funcoff = match self.t.info.version {
            PclntabVersion::Go116 => usize::try_from(u64_at(self.table, funcoff_at)?).ok()?,
            _ => usize::try_from(u32_at(self.table, funcoff_at)?).ok()?,
        };
        let func = self.t.pcln_off.checked_add(funcoff)?;
        let nameoff_at = func.checked_add(entry_size / 2)?;
        let nameoff = u32_at(self.table, nameoff_at)? as i32;
        let name = usize::try_from(i64::try_from(self.t.funcname_off).ok()?.checked_add(i64::from(nameoff))?).ok()?;
        let rest = self.table.get(name..)?;
        let nul = rest.iter().position(|&b| b == 0)?;
        rest.get(..nul)
    }

    pub fn name(&self, i: usize) -> Option<&'a str> {
        std::str::from_utf8(self.name_bytes(i)?).ok()
    }

    fn sorted(&self) -> &'a [u32] {
        self.t.by_name.get_or_init(|| {
            let mut idx: Vec<u32> = (0..self.t.len()).filter_map(|i| u32::try_from(i).ok()).collect();
            idx.sort_by(|&a, &b| self.name_bytes(a as usize).cmp(&self.name_bytes(b as usize)));
            idx
        })
    }

    /// Indices of all functions named exactly `name`, in address order.
    fn all_named(&self, name: &str) -> &'a [u32] {
        let sorted = self.sorted();
        let key = Some(name.as_bytes());
        let start = sorted.partition_point(|&i| self.name_bytes(i as usize) < key);
        let len = sorted[start..].partition_point(|&i| self.name_bytes(i as usize) == key);
        &sorted[start..start + len]
    }

    /// `_func.flag` of function `i`: byte 41 of `_func` for Go 1.16/1.17 and 1.20+, byte 37
    /// for 1.18/1.19 (1.20 inserted `startLine` before `funcID`, `flag`).
    fn func_flag(&self, i: usize) -> Option<u8> {
        let entry_size = if self.t.info.version == PclntabVersion::Go116 { 16 } else { 8 };
        let funcoff_at = self.t.pcln_off.checked_add(i.checked_mul(entry_size)?)?.checked_add(entry_size / 2)?;
        let funcoff = match self.t.info.version {
            PclntabVersion::Go116 => usize::try_from(u64_at(self.table, funcoff_at)?).ok()?,
            _ => usize::try_from(u32_at(self.table, funcoff_at)?).ok()?,
        };
        let flag_at = match self.t.info.version {
            PclntabVersion::Go118 => 37,
            PclntabVersion::Go116 | PclntabVersion::Go120 => 41,
        };
        self.table.get(self.t.pcln_off.checked_add(funcoff)?.checked_add(flag_at)?).copied()
    }

    /// `FuncFlagAsm` (1 << 2, src/internal/abi/symtab.go): written in assembly.
    fn is_asm(&self, i: u32) -> bool {
        self.func_flag(i as usize).is_some_and(|f| f & 4 != 0)
    }

    /// The function a symbol name refers to.
    ///
    /// The pclntab holds the runtime's names (`runtime.FuncForPC(pc).Name()`), which carry no
    /// ABI. The linker's `.symtab` (and `go tool nm`) add `.abi0` to ABI0 symbols: assembly
    /// functions, and the ABI0 wrappers generated for Go functions that assembly calls
    /// (`runtime.newproc`, `runtime.newstack`, ...), which share the Go function's name in
    /// the pclntab. So:
    /// - `name` with one entry: that entry;
    /// - `name` with several entries (a function and its ABI wrapper): the one that is not
    ///   assembly if the other is, otherwise the first (the wrappers come last in the text);
    /// - `name.abi0` not in the table: the other entry of a pair, or the lone `name` (assembly,
    ///   or an ABI0 Go function such as cgo's `main._Cfunc_*` stubs).
    ///
    /// Checked against `go tool nm` for every function of binaries built by Go 1.19–1.23.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        let exact = self.all_named(name);
        match exact {
            [] => {
                let base = name.strip_suffix(".abi0")?;
                match self.all_named(base) {
                    [] => None,
                    // Assembly, or a Go function compiled as ABI0 (cgo's `_Cfunc_` stubs).
                    [one] => Some(*one as usize),
                    many => {
                        let asm: Vec<u32> = many.iter().copied().filter(|&i| self.is_asm(i)).collect();
                        match asm.as_slice() {
                            [a, ..] if asm.len() < many.len() => Some(*a as usize),
                            _ => many.last().map(|&i| i as usize),
                        }
                    }
                }
            }
            [one] => Some(*one as usize),
            many => {
                let has_asm = many.iter().any(|&i| self.is_asm(i));
                let pick = if has_asm { many.iter().find(|&&i| !self.is_asm(i)) } else { None };
                pick.or(many.first()).map(|&i| i as usize)
            }
        }
    }

    /// A name with `[...]`-abbreviated type arguments (see [`crate::elide_type_args`]), when
    /// exactly one function has the abbreviated name.
    pub fn lookup_elided(&self, name: &str) -> Option<usize> {
        let elided = crate::elide_type_args(name);
        if elided == name {
            return None;
        }
        match self.all_named(&elided) {
            [one] => Some(*one as usize),
            _ => None,
        }
    }

    /// Indices of functions whose name starts with `prefix`, in name order.
    pub fn with_prefix(&self, prefix: &str) -> Vec<usize> {
        let sorted = self.sorted();
        let p = prefix.as_bytes();
        let start = sorted.partition_point(|&i| {
            self.name_bytes(i as usize).is_none_or(|n| n.cmp(p) == Ordering::Less)
        });
        sorted[start..]
            .iter()
            .take_while(|&&i| self.name_bytes(i as usize).is_some_and(|n| n.starts_with(p)))
            .map(|&i| i as usize)
            .collect()
    }
}
