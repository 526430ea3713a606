//! Offsets of the runtime struct fields golat reads, per Go release, for binaries without
//! DWARF (`-ldflags=-w`). This is the only place such numbers live.
//!
//! Each row names the Go source it follows and the binaries whose DWARF confirmed it: the
//! test `struct_offsets_dwarf_and_table_agree` builds a workload with every installed
//! toolchain (amd64 and arm64) and requires DWARF == table for every field. A release with no
//! row is refused with [`Error::UnknownLayout`] rather than guessed from its neighbours: Go
//! has changed these structs in minor releases (1.23 moved `g.goid` from 152 to 160, 1.25
//! moved it back and moved `m.curg` and `m.procid`). Go 1.17, 1.18 and 1.20 have no row: no
//! toolchain was available to verify them.
//! Rows assume patch releases keep their minor release's layout (Go does not change runtime
//! structs in patch releases). Development builds are always refused.

use std::collections::HashMap;

use serde::Serialize;

use crate::{
    buildinfo::BuildInfo,
    dwarf::StructLayout,
    elf::Arch,
    error::{Error, Result},
    version::GoVersionKind,
};

/// Struct types read from DWARF.
pub(crate) const STRUCTS: &[&str] = &["runtime.g", "runtime.m", "runtime.p"];

/// Where an offset came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OffsetSource {
    /// The binary's own DWARF.
    Dwarf,
    /// [`LAYOUTS`]: the entry for `go_range`, with where its numbers come from.
    Table {
        go_range: &'static str,
        source_citation: &'static str,
    },
}

/// One byte offset (or struct size) with its provenance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldOffset {
    pub offset: u64,
    pub source: OffsetSource,
}

/// Offsets (bytes from the start of the struct) of the runtime fields a probe reads, and the
/// struct sizes used to sanity-check them. The offsets are identical on amd64 and arm64 for
/// every release in the table; the size of `runtime.p` differs in Go 1.26 (checked against
/// DWARF in the tests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StructOffsets {
    /// `runtime.g.goid` (a 64-bit integer).
    pub g_goid: FieldOffset,
    /// `runtime.g.atomicstatus` (uint32; `atomic.Uint32` from Go 1.20, same offset).
    pub g_atomicstatus: FieldOffset,
    /// `runtime.g.m` (*m, the M running this g).
    pub g_m: FieldOffset,
    /// `runtime.m.curg` (*g, the user goroutine running on this M).
    pub m_curg: FieldOffset,
    /// `runtime.m.procid` (uint64, the thread id on Linux).
    pub m_procid: FieldOffset,
    /// `runtime.p.id` (int32).
    pub p_id: FieldOffset,
    /// `runtime.p.status` (uint32).
    pub p_status: FieldOffset,
    /// `sizeof(runtime.g)`.
    pub g_size: FieldOffset,
    /// `sizeof(runtime.m)`.
    pub m_size: FieldOffset,
    /// `sizeof(runtime.p)`.
    pub p_size: FieldOffset,
}

/// One row of the table: a range of Go minor releases with identical offsets.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// First and last Go 1.x minor release the row applies to (all patch releases).
    pub minors: (u32, u32),
    pub go_range: &'static str,
    pub source_citation: &'static str,
    pub g_goid: u64,
    pub g_atomicstatus: u64,
    pub g_m: u64,
    pub m_curg: u64,
    pub m_procid: u64,
    pub p_id: u64,
    pub p_status: u64,
    pub g_size: PerArch,
    pub m_size: PerArch,
    pub p_size: PerArch,
}

/// A struct size that may differ between architectures (`runtime.p` does in Go 1.26).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerArch {
    pub amd64: u64,
    pub arm64: u64,
}

impl PerArch {
    /// The same on both architectures.
    pub const fn same(v: u64) -> Self {
        Self { amd64: v, arm64: v }
    }

    pub fn get(self, arch: Arch) -> u64 {
        match arch {
            Arch::Amd64 => self.amd64,
            Arch::Arm64 => self.arm64,
        }
    }
}

/// The table. See the module documentation for how each row was obtained.
pub const LAYOUTS: &[Layout] = &[
    Layout {
        minors: (19, 19),
        go_range: "go1.19.x",
        source_citation: "src/runtime/runtime2.go (g, m, p) at go1.19; verified against the DWARF of go1.19.8 builds (amd64, arm64)",
        g_goid: 152,
        g_atomicstatus: 144,
        g_m: 48,
        m_curg: 192,
        m_procid: 72,
        p_id: 0,
        p_status: 4,
        g_size: PerArch::same(392),
        m_size: PerArch::same(1008),
        p_size: PerArch::same(8912),
    },
    Layout {
        minors: (21, 21),
        go_range: "go1.21.x",
        source_citation: "src/runtime/runtime2.go (g, m, p) at go1.21.0; verified against the DWARF of go1.21.13 builds (amd64, arm64)",
        g_goid: 152,
        g_atomicstatus: 144,
        g_m: 48,
        m_curg: 192,
        m_procid: 72,
        p_id: 0,
        p_status: 4,
        g_size: PerArch::same(408),
        m_size: PerArch::same(1008),
        p_size: PerArch::same(8912),
    },
    Layout {
        minors: (22, 22),
        go_range: "go1.22.x",
        source_citation: "src/runtime/runtime2.go (g, m, p) at go1.22.0; verified against the DWARF of go1.22.12 builds (amd64, arm64)",
        g_goid: 152,
        g_atomicstatus: 144,
        g_m: 48,
        m_curg: 192,
        m_procid: 72,
        p_id: 0,
        p_status: 4,
        g_size: PerArch::same(424),
        m_size: PerArch::same(2024),
        p_size: PerArch::same(8944),
    },
    Layout {
        minors: (23, 23),
        go_range: "go1.23.x",
        source_citation: "src/runtime/runtime2.go (g, m, p) at go1.23.0; verified against the DWARF of go1.23.5 builds (amd64, arm64)",
        g_goid: 160,
        g_atomicstatus: 152,
        g_m: 48,
        m_curg: 192,
        m_procid: 72,
        p_id: 0,
        p_status: 4,
        g_size: PerArch::same(432),
        m_size: PerArch::same(1760),
        p_size: PerArch::same(8944),
    },
    Layout {
        minors: (24, 24),
        go_range: "go1.24.x",
        source_citation: "src/runtime/runtime2.go (g, m, p) at go1.24.0; verified against the DWARF of go1.24.11 builds (amd64, arm64; official linux-amd64 toolchain)",
        g_goid: 160,
        g_atomicstatus: 152,
        g_m: 48,
        m_curg: 192,
        m_procid: 72,
        p_id: 0,
        p_status: 4,
        g_size: PerArch::same(440),
        m_size: PerArch::same(1832),
        p_size: PerArch::same(8952),
    },
    Layout {
        minors: (25, 25),
        go_range: "go1.25.x",
        source_citation: "src/runtime/runtime2.go (g, m, p) at go1.25.0; verified against the DWARF of go1.25.5 builds (amd64, arm64; official linux-amd64 toolchain)",
        g_goid: 152,
        g_atomicstatus: 144,
        g_m: 48,
        m_curg: 184,
        m_procid: 64,
        p_id: 0,
        p_status: 4,
        g_size: PerArch::same(440),
        m_size: PerArch::same(1816),
        p_size: PerArch::same(9512),
    },
    Layout {
        minors: (26, 26),
        go_range: "go1.26.x",
        source_citation: "src/runtime/runtime2.go (g, m, p) at go1.26.0; verified against the DWARF of go1.26.6 builds (amd64, arm64; official linux-amd64 toolchain)",
        g_goid: 152,
        g_atomicstatus: 144,
        g_m: 48,
        m_curg: 184,
        m_procid: 64,
        p_id: 0,
        p_status: 4,
        g_size: PerArch::same(456),
        m_size: PerArch::same(1824),
        p_size: PerArch { amd64: 15920, arm64: 14320 },
    },
];

/// The table's offsets for `bi`'s Go version. Development builds are refused (their layout
/// can differ from any release); pre-releases use their release's row.
pub(crate) fn lookup(bi: &BuildInfo, arch: Arch) -> Result<StructOffsets> {
    let v = bi.go_version;
    let unknown = || Error::UnknownLayout { version: bi.go_version_raw.clone() };
    if v.major != 1 || bi.go_version_kind == GoVersionKind::Devel {
        return Err(unknown());
    }
    let row = LAYOUTS
        .iter()
        .find(|r| (r.minors.0..=r.minors.1).contains(&v.minor))
        .ok_or_else(unknown)?;
    let f = |offset| FieldOffset {
        offset,
        source: OffsetSource::Table { go_range: row.go_range, source_citation: row.source_citation },
    };
    Ok(StructOffsets {
        g_goid: f(row.g_goid),
        g_atomicstatus: f(row.g_atomicstatus),
        g_m: f(row.g_m),
        m_curg: f(row.m_curg),
        m_procid: f(row.m_procid),
        p_id: f(row.p_id),
        p_status: f(row.p_status),
        g_size: f(row.g_size.get(arch)),
        m_size: f(row.m_size.get(arch)),
        p_size: f(row.p_size.get(arch)),
    })
}

impl StructOffsets {
    pub(crate) fn from_dwarf(layouts: &HashMap<String, StructLayout>) -> Option<StructOffsets> {
        let member = |s: &str, m: &str| {
            let offset = *layouts.get(s)?.members.get(m)?;
            Some(FieldOffset { offset, source: OffsetSource::Dwarf })
        };
        let size = |s: &str| Some(FieldOffset { offset: layouts.get(s)?.byte_size?, source: OffsetSource::Dwarf });
        Some(StructOffsets {
            g_goid: member("runtime.g", "goid")?,
            g_atomicstatus: member("runtime.g", "atomicstatus")?,
            g_m: member("runtime.g", "m")?,
            m_curg: member("runtime.m", "curg")?,
            m_procid: member("runtime.m", "procid")?,
            p_id: member("runtime.p", "id")?,
            p_status: member("runtime.p", "status")?,
            g_size: size("runtime.g")?,
            m_size: size("runtime.m")?,
            p_size: size("runtime.p")?,
        })
    }

    /// Sanity checks: every field (plus its width) lies inside its struct, pointer and 64-bit
    /// fields are 8-byte aligned, 32-bit fields 4-byte aligned, and distinct fields of one
    /// struct do not overlap.
    pub fn validate(&self) -> Result<()> {
        let checks: [(&str, &FieldOffset, u64, &FieldOffset); 7] = [
            ("g.goid", &self.g_goid, 8, &self.g_size),
            ("g.atomicstatus", &self.g_atomicstatus, 4, &self.g_size),
            ("g.m", &self.g_m, 8, &self.g_size),
            ("m.curg", &self.m_curg, 8, &self.m_size),
            ("m.procid", &self.m_procid, 8, &self.m_size),
            ("p.id", &self.p_id, 4, &self.p_size),
            ("p.status", &self.p_status, 4, &self.p_size),
        ];
        for (name, field, width, size) in checks {
            if field.offset % width != 0 {
                return Err(Error::InvalidLayout(format!("{name} at {} is not {width}-byte aligned", field.offset)));
            }
            if field.offset.checked_add(width).is_none_or(|end| end > size.offset) {
                return Err(Error::InvalidLayout(format!(
                    "{name} at {} (+{width}) is outside its struct of {} bytes",
                    field.offset, size.offset
                )));
            }
        }
        let distinct = [
            ("g.goid", self.g_goid.offset, "g.atomicstatus", self.g_atomicstatus.offset),
            ("g.goid", self.g_goid.offset, "g.m", self.g_m.offset),
            ("g.m", self.g_m.offset, "g.atomicstatus", self.g_atomicstatus.offset),
            ("p.id", self.p_id.offset, "p.status", self.p_status.offset),
        ];
        for (a, x, b, y) in distinct {
            if x == y {
                return Err(Error::InvalidLayout(format!("{a} and {b} share offset {x}")));
            }
        }
        Ok(())
    }
}
