//! arm64 Go binaries read on this (any) host: `golat inspect --json` on `GOARCH=arm64` builds of
//! the gcstw workload, for every installed Go and every variant this machine can build, must
//! give the attach plan Go's own tools describe:
//!
//! - hook sites: the entry of each hooked function and every RET of
//!   `runtime.startTheWorldWithSema`, and for Go <= 1.21 the instruction right after each
//!   `CALL runtime.nanotime1.abi0` in `gcStart`/`gcMarkDone` (and the last one in
//!   `gcMarkTermination`), all as listed by `go tool objdump` of the unstripped twin; file
//!   offsets through the PT_LOAD segment that holds the address;
//! - struct offsets equal to the DWARF of the unstripped twin (read by `readelf`, independent of
//!   gobin);
//! - the Go-ABI fact the `gc_clock` probe relies on: right after the call, the code loads
//!   `nanotime1`'s result from `8(RSP)` (`ABI0_RESULT0_SP_OFFSET` in probe-ebpf/src/go_abi.rs).
//!
//! Reads files only (no root, no arm64 machine needed).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use integration_tests::{
    go_build::{self, GoArch, GoToolchain, ObjdumpInsn, Variant},
    harness::{go_toolchains, golat, golat_bin, in_ci},
};
use serde_json::Value;

/// Where probe-ebpf/src/go_abi.rs reads an ABI0 function's first result on arm64, relative to
/// the stack pointer right after the call returned.
const ARM64_ABI0_RESULT0_SP_OFFSET: u64 = 8;

const VARIANTS: [Variant; 6] =
    [Variant::Default, Variant::Stripped, Variant::Pie, Variant::PieStripped, Variant::CgoPie, Variant::CgoPieStripped];

fn golat_built() -> bool {
    if golat_bin().exists() {
        return true;
    }
    assert!(!in_ci(), "golat not built");
    eprintln!("SKIPPED: {} not built", golat_bin().display());
    false
}

/// Every buildable arm64 variant of the gcstw workload: (go, variant, binary, unstripped twin).
fn cases() -> Vec<(GoToolchain, Variant, std::path::PathBuf, std::path::PathBuf)> {
    let dir = go_build::workload_dir("gcstw");
    let mut out = Vec::new();
    for go in go_toolchains() {
        for variant in VARIANTS {
            if let Err(why) = go_build::can_build_with(&go, variant, GoArch::Arm64) {
                assert!(!in_ci() || !variant.is_cgo(), "{go} arm64 {variant}: {why} (cargo xtask setup installs the cross compiler)");
                eprintln!("skipping {go} arm64 {variant}: {why}");
                continue;
            }
            let build = |v| go_build::build(&dir, &go, v, GoArch::Arm64).unwrap_or_else(|e| panic!("{go} arm64 {v}: {e:#}"));
            let (bin, twin) = (build(variant), build(variant.unstripped_twin()));
            out.push((go.clone(), variant, bin, twin));
        }
    }
    out
}

fn inspect(path: &Path) -> Value {
    let out = golat().args(["inspect", "--json"]).arg(path).output().expect("run golat inspect");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("{e}: {line} {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "golat inspect {}: {v}", path.display());
    v["data"].clone()
}

/// File offset of virtual address `addr` through the PT_LOAD segment containing it (parsed here,
/// independently of gobin).
fn file_offset(elf: &[u8], addr: u64) -> u64 {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(u16_at(18), 183, "EM_AARCH64");
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&ph| u32_at(ph) == 1) // PT_LOAD
        .find_map(|ph| {
            let (offset, vaddr, filesz) = (u64_at(ph + 8), u64_at(ph + 16), u64_at(ph + 32));
            (vaddr..vaddr + filesz).contains(&addr).then(|| addr - vaddr + offset)
        })
        .unwrap_or_else(|| panic!("{addr:#x} in no PT_LOAD segment"))
}

/// The instructions of each function, from `go tool objdump` of `twin`.
fn objdump(go: &GoToolchain, twin: &Path) -> BTreeMap<String, Vec<ObjdumpInsn>> {
    let re = r"^runtime\.(startTheWorldWithSema|stopTheWorldWithSema|gcStart|gcMarkDone|gcMarkTermination|casgstatus)$";
    let mut by_fn: BTreeMap<String, Vec<ObjdumpInsn>> = BTreeMap::new();
    for insn in go_build::go_objdump(go, twin, re, GoArch::Arm64).expect("go tool objdump") {
        by_fn.entry(insn.function.clone()).or_default().push(insn);
    }
    by_fn
}

/// Addresses right after each `CALL runtime.nanotime1.abi0(SB)` in `f`, checking that the first
/// instruction after the call that touches the stack loads the result from the offset the
/// probe reads.
fn after_nanotime_calls(f: &[ObjdumpInsn], label: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, insn) in f.iter().enumerate() {
        if !(insn.text.starts_with("CALL runtime.nanotime1") || insn.text.starts_with("BL runtime.nanotime1")) {
            continue;
        }
        let next = f.get(i + 1).unwrap_or_else(|| panic!("{label}: call at the end of {}", insn.function));
        assert_eq!(next.address, insn.address + 4, "{label}");
        let load = f[i + 1..]
            .iter()
            .find(|n| n.text.contains("(RSP)"))
            .unwrap_or_else(|| panic!("{label}: no stack access after the call at {:#x}", insn.address));
        let want = format!("MOVD {ARM64_ABI0_RESULT0_SP_OFFSET}(RSP), ");
        assert!(
            load.text.starts_with(&want),
            "{label}: after `{}` at {:#x} in {} the result is read by `{}`, not `{want}Rn`",
            insn.text,
            insn.address,
            insn.function,
            load.text
        );
        out.push(next.address);
    }
    out
}

type HookKey = (String, String, String);

/// golat's hooks as {(program, function, kind): [(address, file_offset)]}.
fn golat_hooks(plan: &Value) -> BTreeMap<HookKey, Vec<(u64, u64)>> {
    let mut out: BTreeMap<HookKey, Vec<(u64, u64)>> = BTreeMap::new();
    for h in plan["hooks"].as_array().expect("hooks").iter().chain(std::iter::once(&plan["sched_hook"])) {
        let key = (h["program"].as_str().unwrap().to_owned(), h["function"].as_str().unwrap().to_owned(), h["kind"].as_str().unwrap().to_owned());
        let sites = h["sites"].as_array().expect("sites").iter().map(|s| (s["address"].as_u64().unwrap(), s["file_offset"].as_u64().unwrap()));
        out.entry(key).or_default().extend(sites);
    }
    out
}

/// The hooks golat must plan for `minor` (Go 1.minor), from objdump alone.
fn expected_hooks(minor: u32, by_fn: &BTreeMap<String, Vec<ObjdumpInsn>>, elf: &[u8], label: &str) -> BTreeMap<HookKey, Vec<(u64, u64)>> {
    let f = |name: &str| by_fn.get(name).unwrap_or_else(|| panic!("{label}: {name} not in objdump"));
    let entry = |name: &str| vec![f(name)[0].address];
    let key = |p: &str, f: &str, k: &str| (p.to_owned(), f.to_owned(), k.to_owned());
    let mut want: BTreeMap<HookKey, Vec<u64>> = BTreeMap::new();
    let start = "runtime.startTheWorldWithSema";
    want.insert(key("stw_start_entry", start, "entry"), entry(start));
    let rets: Vec<u64> = f(start).iter().filter(|i| i.is_ret()).map(|i| i.address).collect();
    assert!(!rets.is_empty(), "{label}: no RET in {start}");
    want.insert(key("stw_start_ret", start, "return"), rets);
    want.insert(key("gc_mark_term_entry", "runtime.gcMarkTermination", "entry"), entry("runtime.gcMarkTermination"));
    want.insert(key("goroutine_casgstatus", "runtime.casgstatus", "entry"), entry("runtime.casgstatus"));
    if minor <= 21 {
        want.insert(key("stw_stop_entry", "runtime.stopTheWorldWithSema", "entry"), entry("runtime.stopTheWorldWithSema"));
        for caller in ["runtime.gcStart", "runtime.gcMarkDone"] {
            let sites = after_nanotime_calls(f(caller), label);
            assert_eq!(sites.len(), 1, "{label}: {caller} calls nanotime1 once");
            want.insert(key("gc_clock", caller, "after_call"), sites);
        }
        let term = after_nanotime_calls(f("runtime.gcMarkTermination"), label);
        assert!(!term.is_empty(), "{label}: gcMarkTermination calls nanotime1");
        want.insert(key("gc_clock", "runtime.gcMarkTermination", "after_call"), vec![*term.last().unwrap()]);
    }
    want.into_iter().map(|(k, v)| (k, v.into_iter().map(|a| (a, file_offset(elf, a))).collect())).collect()
}

#[test]
fn arm64_attach_plans_match_go_objdump() {
    if !golat_built() {
        return;
    }
    let mut checked = 0;
    for (go, variant, bin, twin) in cases() {
        let label = format!("{} arm64 {variant}", go.version);
        let minor = go.version_tuple().1;
        let v = inspect(&bin);
        assert_eq!(v["binary"]["arch"], "arm64", "{label}");
        assert_eq!(v["binary"]["stripped"], variant.is_stripped(), "{label}");
        assert_eq!(v["binary"]["pie"], variant.is_pie(), "{label}");
        assert_eq!(v["binary"]["cgo"], variant.is_cgo(), "{label}");
        assert_eq!(v["can_attach"], true, "{label}: {v}");
        let plan = &v["plan"];
        assert_eq!(plan["exact_pause_clock"], true, "{label}: {plan}");
        let want_abi = match minor {
            ..=20 => "no_reason (go1.17-1.20)",
            21 => "reason_at_stop (go1.21)",
            _ => "world_stop (go1.22+)",
        };
        assert_eq!(plan["stw_abi"], want_abi, "{label}");
        let elf = std::fs::read(&bin).expect("read binary");
        let want = expected_hooks(minor, &objdump(&go, &twin), &elf, &label);
        let got = golat_hooks(plan);
        assert_eq!(got, want, "{label}: golat's hook sites differ from go tool objdump");
        let n: usize = got.values().map(Vec::len).sum();
        println!("{label}: {n} hook sites equal to go tool objdump");
        checked += 1;
    }
    assert!(checked >= 3 * go_toolchains().len(), "only {checked} arm64 builds checked");
}

/// `(byte_size, {member: offset})` of the named structs, from `readelf --debug-dump=info`.
fn dwarf_structs(binary: &Path, names: &[&str]) -> BTreeMap<String, (u64, BTreeMap<String, u64>)> {
    let out = Command::new("readelf").args(["--wide", "--debug-dump=info"]).arg(binary).output().expect("run readelf (binutils)");
    assert!(out.status.success(), "readelf {}: {}", binary.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let wanted: BTreeSet<&str> = names.iter().copied().collect();
    let mut structs = BTreeMap::new();
    // Current DIE: (depth, tag); current struct being collected (name, size, members).
    let mut cur: Option<(String, u64, BTreeMap<String, u64>)> = None;
    let (mut depth, mut tag, mut member) = (0u32, String::new(), None::<String>);
    // `DW_AT_name        : (string) runtime.g` (the `(form)` is printed by some readelf
    // versions only).
    let attr = |line: &str, name: &str| {
        let v = line.split_once(name)?.1.trim_start_matches([' ', ':']).trim();
        let v = if v.starts_with('(') { v.split_once(") ").map_or(v, |(_, rest)| rest) } else { v };
        Some(v.split_whitespace().next().unwrap_or("").to_owned())
    };
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('<') && t.contains("Abbrev Number") {
            depth = t[1..].split('>').next().and_then(|d| d.parse().ok()).unwrap_or(0);
            tag = t.split('(').nth(1).map(|s| s.trim_end_matches(')').to_owned()).unwrap_or_default();
            member = None;
            if depth <= 1 {
                if let Some((n, s, m)) = cur.take() {
                    structs.insert(n, (s, m));
                }
            }
            continue;
        }
        if depth == 1 && tag == "DW_TAG_structure_type" {
            if let Some(n) = attr(t, "DW_AT_name") {
                if wanted.contains(n.as_str()) && !structs.contains_key(&n) {
                    cur = Some((n, 0, BTreeMap::new()));
                }
            } else if let (Some(s), Some(c)) = (attr(t, "DW_AT_byte_size"), cur.as_mut()) {
                c.1 = s.parse().expect("byte size");
            }
        } else if depth == 2 && tag == "DW_TAG_member" {
            if let Some(n) = attr(t, "DW_AT_name") {
                member = Some(n);
            } else if let (Some(off), Some(c), Some(m)) = (attr(t, "DW_AT_data_member_location"), cur.as_mut(), member.as_ref()) {
                c.2.insert(m.clone(), off.parse().expect("member offset"));
            }
        }
    }
    if let Some((n, s, m)) = cur.take() {
        structs.insert(n, (s, m));
    }
    structs
}

#[test]
fn arm64_struct_offsets_equal_dwarf() {
    if !golat_built() {
        return;
    }
    let mut checked = 0;
    for (go, variant, bin, twin) in cases() {
        let label = format!("{} arm64 {variant}", go.version);
        let dwarf = dwarf_structs(&twin, &["runtime.g", "runtime.m", "runtime.p"]);
        let member = |s: &str, m: &str| {
            dwarf.get(s).and_then(|(_, ms)| ms.get(m)).copied().unwrap_or_else(|| panic!("{label}: {s}.{m} not in DWARF"))
        };
        let size = |s: &str| dwarf.get(s).map(|(n, _)| *n).unwrap_or_else(|| panic!("{label}: {s} not in DWARF"));
        let want: BTreeMap<&str, u64> = [
            ("g_goid", member("runtime.g", "goid")),
            ("g_atomicstatus", member("runtime.g", "atomicstatus")),
            ("g_m", member("runtime.g", "m")),
            ("m_curg", member("runtime.m", "curg")),
            ("m_procid", member("runtime.m", "procid")),
            ("p_id", member("runtime.p", "id")),
            ("p_status", member("runtime.p", "status")),
            ("g_size", size("runtime.g")),
            ("m_size", size("runtime.m")),
            ("p_size", size("runtime.p")),
        ]
        .into_iter()
        .collect();
        let v = inspect(&bin);
        let offsets = &v["struct_offsets"];
        for (field, want) in &want {
            assert_eq!(offsets[field]["offset"].as_u64(), Some(*want), "{label}: {field}: {}", offsets[field]);
            let dwarf_source = offsets[field]["source"] == "dwarf";
            assert_eq!(dwarf_source, !variant.is_stripped(), "{label}: {field} source {}", offsets[field]["source"]);
        }
        println!("{label}: struct offsets equal DWARF (goid +{})", want["g_goid"]);
        checked += 1;
    }
    assert!(checked >= 3 * go_toolchains().len(), "only {checked} arm64 builds checked");
}
