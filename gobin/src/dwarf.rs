//! Struct layouts from the binary's DWARF (`.debug_info`), which the Go linker emits unless
//! `-w`. Sections may be compressed: `SHF_COMPRESSED` zlib (Go 1.19+, external linkers) or GNU
//! `.zdebug_*` (Go 1.11–1.18); the `object` crate decompresses both.

use std::{borrow::Cow, collections::HashMap};

use object::{Object as _, ObjectSection as _, read::elf::ElfFile64};

use crate::error::{Error, Result};

/// Members and size of one struct type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StructLayout {
    pub byte_size: Option<u64>,
    pub members: HashMap<String, u64>,
}

/// Whether the file has a `.debug_info` or `.zdebug_info` section.
pub(crate) fn has_dwarf(elf: &crate::elf::Elf) -> bool {
    elf.sections
        .iter()
        .any(|s| (s.name == ".debug_info" || s.name == ".zdebug_info") && s.size > 0)
}

/// Layouts of the named struct types (e.g. `runtime.g`), for those found. Only the sections
/// needed to read type DIEs are decompressed.
pub(crate) fn struct_layouts(data: &[u8], names: &[&str]) -> Result<HashMap<String, StructLayout>> {
    let file = ElfFile64::<object::LittleEndian>::parse(data).map_err(|e| Error::Dwarf(e.to_string()))?;
    let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>> {
        let wanted = matches!(
            id,
            gimli::SectionId::DebugInfo
                | gimli::SectionId::DebugAbbrev
                | gimli::SectionId::DebugStr
                | gimli::SectionId::DebugStrOffsets
                | gimli::SectionId::DebugLineStr
                | gimli::SectionId::DebugAddr
        );
        if !wanted {
            return Ok(Cow::Borrowed(&[]));
        }
        // section_by_name also finds the ".zdebug_" spelling of ".debug_" names.
        match file.section_by_name(id.name()) {
            Some(sec) => sec
                .uncompressed_data()
                .map_err(|e| Error::Dwarf(format!("{}: {e}", id.name()))),
            None => Ok(Cow::Borrowed(&[])),
        }
    };
    let sections = gimli::DwarfSections::load(load)?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    let derr = |e: gimli::Error| Error::Dwarf(e.to_string());

    let mut out: HashMap<String, StructLayout> = HashMap::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(derr)? {
        // Not `dwarf.unit(header)`: that also parses the line program, which we do not load.
        let abbrevs = dwarf.abbreviations(&header).map_err(derr)?;
        let mut cursor = header.entries(&abbrevs);
        let mut depth: isize = 0;
        // Depth of the struct whose members we are collecting, and its name.
        let mut current: Option<(isize, String)> = None;
        while let Some((delta, entry)) = cursor.next_dfs().map_err(derr)? {
            depth += delta;
            if let Some((d, _)) = &current {
                if depth <= *d {
                    current = None;
                }
            }
            let tag = entry.tag();
            if tag == gimli::DW_TAG_structure_type {
                let Some(name) = entry.attr_value(gimli::DW_AT_name).map_err(derr)? else { continue };
                let Some(name) = attr_str(&dwarf, name) else { continue };
                if names.contains(&name) && !out.contains_key(name) {
                    let byte_size = entry
                        .attr_value(gimli::DW_AT_byte_size)
                        .map_err(derr)?
                        .and_then(|v| v.udata_value());
                    out.insert(name.to_owned(), StructLayout { byte_size, members: HashMap::new() });
                    current = Some((depth, name.to_owned()));
                }
            } else if tag == gimli::DW_TAG_member {
                let Some((d, sname)) = &current else { continue };
                if depth != d + 1 {
                    continue;
                }
                let Some(mname) = entry.attr_value(gimli::DW_AT_name).map_err(derr)? else { continue };
                let Some(mname) = attr_str(&dwarf, mname) else { continue };
                let loc = entry.attr_value(gimli::DW_AT_data_member_location).map_err(derr)?;
                let offset = match loc {
                    Some(gimli::AttributeValue::Exprloc(expr)) => plus_uconst(expr.0.slice()),
                    Some(v) => v.udata_value(),
                    None => None,
                };
                if let (Some(off), Some(layout)) = (offset, out.get_mut(sname.as_str())) {
                    layout.members.entry(mname.to_owned()).or_insert(off);
                }
            }
        }
        if names.iter().all(|n| out.contains_key(*n)) {
            break;
        }
    }
    Ok(out)
}

type Slice<'a> = gimli::EndianSlice<'a, gimli::LittleEndian>;

/// A string attribute in one of the forms that need no unit context (Go uses `DW_FORM_string`).
fn attr_str<'a>(dwarf: &gimli::Dwarf<Slice<'a>>, value: gimli::AttributeValue<Slice<'a>>) -> Option<&'a str> {
    let s = match value {
        gimli::AttributeValue::String(s) => s,
        gimli::AttributeValue::DebugStrRef(o) => dwarf.debug_str.get_str(o).ok()?,
        gimli::AttributeValue::DebugLineStrRef(o) => dwarf.debug_line_str.get_str(o).ok()?,
        _ => return None,
    };
    std::str::from_utf8(s.slice()).ok()
}

/// A location expression that is exactly `DW_OP_plus_uconst n`.
fn plus_uconst(expr: &[u8]) -> Option<u64> {
    let (&op, rest) = expr.split_first()?;
    if op != gimli::DW_OP_plus_uconst.0 {
        return None;
    }
    let mut v: u64 = 0;
    for (i, &b) in rest.iter().enumerate() {
        if i >= 10 {
            return None;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return (i + 1 == rest.len()).then_some(v);
        }
    }
    None
}
