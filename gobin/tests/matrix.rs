//! gobin against Go's own tools, for every installed Go toolchain × {amd64, arm64} × every
//! variant this machine can build (see `common::matrix`). Only reads files.

mod common;

use std::collections::HashMap;

use common::{Case, HOOKS, OPTIONAL_HOOKS, RET_FUNCS, matrix};
use gobin::{AddressSource, Arch, Error, GoBinary, OffsetSource};
use integration_tests::go_build::{self, GoArch};

fn open(case: &Case) -> GoBinary {
    GoBinary::open(&case.path).unwrap_or_else(|e| panic!("{}: {e}", case.label()))
}

/// Text symbols (`T`/`t`) of `go tool nm` on the case's unstripped twin.
fn nm_text(case: &Case) -> HashMap<String, u64> {
    let twin = case.twin();
    let syms = go_build::go_nm(&twin.go, &twin.path).unwrap_or_else(|e| panic!("{}: {e:#}", twin.label()));
    let mut out = HashMap::new();
    for s in syms {
        if let (Some(a), 'T' | 't') = (s.address, s.kind) {
            out.entry(s.name).or_insert(a);
        }
    }
    out
}

fn arch_of(case: &Case) -> Arch {
    match case.arch {
        GoArch::Amd64 => Arch::Amd64,
        GoArch::Arm64 => Arch::Arm64,
    }
}

#[test]
fn build_info_and_flags() {
    for case in matrix() {
        let bin = open(case);
        let bi = bin.build_info();
        let l = case.label();
        assert_eq!(bi.go_version_raw, case.go.version, "{l}");
        assert_eq!(bin.go_version().to_string().as_str(), {
            let (a, b, c) = case.go.version_tuple();
            format!("go{a}.{b}.{c}")
        }, "{l}");
        assert_eq!(bin.arch(), arch_of(case), "{l}");
        assert_eq!(bin.is_pie(), case.variant.is_pie(), "{l}");
        assert_eq!(bin.is_stripped(), case.variant.is_stripped(), "{l}");
        assert_eq!(bin.has_dwarf(), !case.variant.is_stripped(), "{l}");
        assert_eq!(bin.cgo(), case.variant.is_cgo(), "{l}");
        assert_eq!(bin.pgo(), case.variant == go_build::Variant::Pgo, "{l}");
        if bin.pgo() {
            assert!(bi.setting("-pgo").is_some_and(|p| p.ends_with(".pprof")), "{l}");
        }
        assert_eq!(bi.path.as_deref(), Some("golat.test/inspect"), "{l}");
        assert_eq!(bi.main_module.as_ref().map(|m| m.path.as_str()), Some("golat.test/inspect"), "{l}");
        // Go 1.18/1.19 record neither -buildmode nor -ldflags.
        if case.go.version_tuple() >= (1, 20, 0) {
            let mode = if case.variant.is_pie() { "pie" } else { "exe" };
            assert_eq!(bi.setting("-buildmode"), Some(mode), "{l}");
            if case.variant.is_stripped() {
                assert_eq!(bi.setting("-ldflags"), Some("-s -w"), "{l}");
            }
        }
        assert_eq!(bi.setting("GOARCH"), Some(case.arch.as_str()), "{l}");
        assert_eq!(bi.setting("CGO_ENABLED"), Some(if case.variant.is_cgo() { "1" } else { "0" }), "{l}");
        // The summary serialises.
        let json = serde_json_lite(&bin);
        assert!(json.contains(&case.go.version), "{l}");
    }
}

/// Debug-format the summary (serde_json is not a dependency; Serialize is exercised by the
/// user crate). Here we only make sure it is built without panicking.
fn serde_json_lite(bin: &GoBinary) -> String {
    format!("{:?}", bin.summary())
}

#[test]
fn hook_addresses_match_go_nm() {
    for case in matrix() {
        let bin = open(case);
        let twin = open(case.twin());
        let nm = nm_text(case);
        let l = case.label();
        for &name in HOOKS {
            let want = *nm.get(name).unwrap_or_else(|| panic!("{l}: go tool nm has no {name}"));
            let f = bin.function(name).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(f.address, want, "{l}: {name}");
            let expected_source = if case.variant.is_stripped() { AddressSource::Pclntab } else { AddressSource::Symtab };
            assert_eq!(f.source, expected_source, "{l}: {name}");
            let p = bin.function_from(name, AddressSource::Pclntab).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!((p.address, p.size, p.file_offset), (f.address, f.size, f.file_offset), "{l}: {name}");
            assert!(f.size > 0, "{l}: {name}");
            // The bytes a uprobe at file_offset would patch are the function's first bytes in
            // the unstripped twin too.
            let tf = twin.function(name).unwrap_or_else(|e| panic!("{l}: twin: {e}"));
            let n = 16.min(f.size) as usize;
            let here = &bin.data()[f.file_offset as usize..][..n];
            let there = &twin.data()[tf.file_offset as usize..][..n];
            assert_eq!(here, there, "{l}: {name} entry bytes");
            assert_eq!(bin.code(&f).unwrap()[..n], *here, "{l}: {name}");
        }
        for &name in OPTIONAL_HOOKS {
            assert_eq!(bin.function(name).ok().map(|f| f.address), nm.get(name).copied(), "{l}: {name}");
        }
        assert!(matches!(bin.function("main.noSuchFunction"), Err(Error::FunctionNotFound(n)) if n == "main.noSuchFunction"));
    }
}

/// Every function of the pclntab is in `go tool nm` at the same address, under its runtime
/// name, with the `.abi0` suffix the linker gives ABI0 symbols, with "·" spelled ".", or
/// with type arguments the pclntab abbreviates as `[...]`; every Go text symbol of
/// `go tool nm` resolves to its address (stripped binaries through the pclntab); and in
/// unstripped binaries `.symtab` and the pclntab agree.
#[test]
fn all_functions_match_go_nm() {
    for case in matrix() {
        let bin = open(case);
        let nm = nm_text(case);
        let mut by_addr: HashMap<u64, Vec<&str>> = HashMap::new();
        for (name, &a) in &nm {
            by_addr.entry(a).or_default().push(name);
        }
        let l = case.label();
        let mut n = 0usize;
        let mut prev_end = 0u64;
        for f in bin.functions() {
            n += 1;
            let names = by_addr.get(&f.address).map(Vec::as_slice).unwrap_or_default();
            let abi0 = format!("{}.abi0", f.name);
            // The ELF symbol table spells the runtime's "·" as ".".
            let dotted = f.name.replace('\u{b7}', ".");
            assert!(
                names.iter().any(|&x| x == f.name || x == abi0 || x == dotted || gobin::elide_type_args(x) == f.name),
                "{l}: pclntab {} at {:#x}, nm has {names:?} there",
                f.name,
                f.address
            );
            assert!(f.address >= prev_end, "{l}: {} overlaps its predecessor", f.name);
            prev_end = f.end();
        }
        assert_eq!(n, bin.pclntab_info().nfunc, "{l}");
        let mut checked = 0;
        for (name, &addr) in &nm {
            let base = name.strip_suffix(".abi0").unwrap_or(name);
            let elided = gobin::elide_type_args(base);
            let same: Vec<u64> =
                bin.functions_matching(&elided).iter().filter(|f| f.name == elided).map(|f| f.address).collect();
            if same.is_empty() {
                continue; // not a Go function (C code, linker symbols)
            }
            if elided != base && same.len() > 1 {
                // Several instantiations share the abbreviated name: no unique answer, but
                // the address is one of them.
                assert!(same.contains(&addr), "{l}: {name}");
                assert!(matches!(bin.function(name), Ok(f) if f.address == addr) || bin.is_stripped());
                checked += 1;
                continue;
            }
            checked += 1;
            let f = bin.function(name).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(f.address, addr, "{l}: {name}");
            let p = bin.function_from(name, AddressSource::Pclntab).unwrap_or_else(|e| panic!("{l}: pclntab: {e}"));
            assert_eq!(p.address, addr, "{l}: {name} via pclntab");
            if !case.variant.is_stripped() {
                let s = bin.function_from(name, AddressSource::Symtab).unwrap_or_else(|e| panic!("{l}: {e}"));
                assert_eq!((s.address, s.size), (p.address, p.size), "{l}: {name}");
            }
        }
        // (nm names can repeat, so this is not exactly n.)
        assert!(checked > n * 9 / 10, "{l}: only {checked} nm symbols for {n} functions");
        let gc: Vec<String> = bin.functions_matching("runtime.gcMark").into_iter().map(|f| f.name).collect();
        assert!(gc.iter().any(|n| n == "runtime.gcMarkDone"), "{l}: {gc:?}");
        assert!(gc.iter().all(|n| n.starts_with("runtime.gcMark")), "{l}: {gc:?}");
        assert!(gc.windows(2).all(|w| w[0] <= w[1]), "{l}: not sorted");
    }
}

#[test]
fn return_sites_match_go_objdump() {
    for case in matrix() {
        let bin = open(case);
        let twin = case.twin();
        let l = case.label();
        for &name in RET_FUNCS {
            let regex = format!("^{}$", name.replace('.', "\\."));
            let insns = go_build::go_objdump(&twin.go, &twin.path, &regex, case.arch)
                .unwrap_or_else(|e| panic!("{l}: {e:#}"));
            assert!(!insns.is_empty(), "{l}: objdump shows no {name}");
            let want: Vec<u64> = insns.iter().filter(|i| i.is_ret()).map(|i| i.address).collect();
            let f = bin.function(name).unwrap_or_else(|e| panic!("{l}: {e}"));
            let got = bin.return_sites(&f).unwrap_or_else(|e| panic!("{l}: {e}"));
            let addrs: Vec<u64> = got.iter().map(|s| s.address).collect();
            assert_eq!(addrs, want, "{l}: {name}");
            for s in &got {
                assert_eq!(s.file_offset - f.file_offset, s.address - f.address, "{l}: {name}");
            }
            // Each instruction objdump shows is at the file offset we compute. A stripped
            // build's code equals its twin's except for PC-relative references to data (whose
            // layout -s changes): compare the entry instruction and the RETs there.
            let first = insns.first().map(|i| i.address);
            for insn in insns.iter().filter(|i| !case.variant.is_stripped() || i.is_ret() || Some(i.address) == first) {
                let off = (f.file_offset + (insn.address - f.address)) as usize;
                assert_eq!(&bin.data()[off..off + insn.bytes.len()], &insn.bytes[..], "{l}: {name} at {:#x}", insn.address);
            }
        }
    }
}

/// Return sites of every function equal objdump's RETs, for the newest toolchain's default
/// build on each architecture (a whole-binary objdump is too slow to repeat for every case).
#[test]
fn return_sites_of_every_function_match_go_objdump() {
    let newest = matrix().last().map(|c| c.go.clone()).expect("matrix");
    for arch in GoArch::ALL {
        let Some(case) = matrix()
            .iter()
            .find(|c| c.go == newest && c.arch == arch && c.variant == go_build::Variant::Default)
        else {
            continue;
        };
        let bin = open(case);
        let l = case.label();
        let insns = go_build::go_objdump(&case.go, &case.path, ".", arch).unwrap_or_else(|e| panic!("{l}: {e:#}"));
        // RETs by function entry (names are ambiguous: a function and its ABI wrapper).
        // amd64 functions with instructions Go's disassembler cannot decode ("?", e.g. AVX-512
        // in Go 1.26's runtime) are skipped: there objdump loses sync, iced-x86 does not (GNU
        // objdump agrees with iced-x86 on go1.26.6's expandAVX512_1).
        let mut want: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut undecodable = std::collections::HashSet::new();
        let mut current = (None::<&str>, 0u64);
        for i in &insns {
            if current.0 != Some(i.function.as_str()) {
                current = (Some(i.function.as_str()), i.address);
            }
            let v = want.entry(current.1).or_default();
            if i.is_ret() {
                v.push(i.address);
            }
            // (On arm64 "?" is padding or a literal: fixed-width decoding cannot lose sync.)
            if i.text == "?" && arch == GoArch::Amd64 {
                undecodable.insert(current.1);
            }
        }
        want.retain(|entry, _| !undecodable.contains(entry));
        let mut with_rets = 0;
        let mut without = 0;
        for f in bin.functions() {
            let Some(w) = want.get(&f.address) else { continue };
            match bin.return_sites(&f) {
                Ok(sites) => {
                    with_rets += 1;
                    assert_eq!(sites.iter().map(|s| s.address).collect::<Vec<_>>(), *w, "{l}: {}", f.name);
                }
                Err(Error::NoReturnSites { function }) => {
                    without += 1;
                    assert!(w.is_empty(), "{l}: {function}: objdump has RETs {w:x?}");
                }
                Err(e) => panic!("{l}: {}: {e}", f.name),
            }
        }
        println!("{l}: {with_rets} functions with RETs, {without} without, {} skipped (objdump \"?\")", undecodable.len());
        assert!(with_rets > 1000 && without > 10, "{l}: {with_rets} with RETs, {without} without");
    }
}

#[test]
fn struct_offsets_dwarf_and_table_agree() {
    for case in matrix() {
        let bin = open(case);
        let l = case.label();
        let table = bin.struct_offsets_from_table().unwrap_or_else(|e| panic!("{l}: {e}"));
        table.validate().unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(table.g_goid.offset < table.g_size.offset);
        let got = bin.struct_offsets().unwrap_or_else(|e| panic!("{l}: {e}"));
        if case.variant.is_stripped() {
            assert!(bin.struct_offsets_from_dwarf().unwrap().is_none(), "{l}");
            assert_eq!(got, table, "{l}");
            assert!(matches!(got.g_goid.source, OffsetSource::Table { .. }), "{l}");
        } else {
            let dwarf = bin.struct_offsets_from_dwarf().unwrap().unwrap_or_else(|| panic!("{l}: no DWARF offsets"));
            assert_eq!(got, dwarf, "{l}");
            assert_eq!(got.g_goid.source, OffsetSource::Dwarf, "{l}");
            let nums = |o: &gobin::StructOffsets| {
                [
                    o.g_goid.offset,
                    o.g_atomicstatus.offset,
                    o.g_m.offset,
                    o.m_curg.offset,
                    o.m_procid.offset,
                    o.p_id.offset,
                    o.p_status.offset,
                    o.g_size.offset,
                    o.m_size.offset,
                    o.p_size.offset,
                ]
            };
            assert_eq!(nums(&dwarf), nums(&table), "{l}: DWARF vs layout table");
        }
    }
}

/// Direct call sites (`GoBinary::call_return_sites`) equal objdump's `CALL f(SB)` lines, for
/// every callee of the STW functions.
#[test]
fn call_sites_match_go_objdump() {
    for case in matrix() {
        let bin = open(case);
        let twin = case.twin();
        let l = case.label();
        for caller_name in ["runtime.stopTheWorldWithSema", "runtime.startTheWorldWithSema", "runtime.gcStart"] {
            let regex = format!("^{}$", caller_name.replace('.', "\\."));
            let insns = go_build::go_objdump(&twin.go, &twin.path, &regex, case.arch)
                .unwrap_or_else(|e| panic!("{l}: {e:#}"));
            let mut want: HashMap<&str, Vec<u64>> = HashMap::new();
            for i in &insns {
                let Some(callee) = i.text.strip_prefix("CALL ").and_then(|t| t.strip_suffix("(SB)")) else { continue };
                want.entry(callee).or_default().push(i.address + i.bytes.len() as u64);
            }
            assert!(!want.is_empty(), "{l}: {caller_name} calls nothing?");
            let caller = bin.function(caller_name).unwrap_or_else(|e| panic!("{l}: {e}"));
            for (callee_name, sites) in want {
                let callee = bin.function(callee_name).unwrap_or_else(|e| panic!("{l}: {callee_name}: {e}"));
                let got = bin.call_return_sites(&caller, &callee).unwrap_or_else(|e| panic!("{l}: {e}"));
                let addrs: Vec<u64> = got.iter().map(|s| s.address).collect();
                assert_eq!(addrs, sites, "{l}: {caller_name} -> {callee_name}");
                for s in &got {
                    assert_eq!(s.file_offset - caller.file_offset, s.address - caller.address, "{l}");
                }
            }
        }
    }
}

/// Without PGO, `runtime.casgstatus` is never inlined into the scheduler functions golat relies
/// on: each of them calls it.
#[test]
fn casgstatus_is_called_not_inlined_without_pgo() {
    for case in matrix().iter().filter(|c| c.variant != go_build::Variant::Pgo) {
        let bin = open(case);
        let l = case.label();
        let casg = bin.function("runtime.casgstatus").unwrap();
        for caller in ["runtime.execute", "runtime.ready", "runtime.newproc1"] {
            let f = bin.function(caller).unwrap();
            let sites = bin.call_return_sites(&f, &casg);
            assert!(sites.is_ok_and(|s| !s.is_empty()), "{l}: {caller} does not call casgstatus");
        }
    }
}
