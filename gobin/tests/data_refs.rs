//! `runtime.sched.timeToRun` (the runtime's scheduling-latency histogram that golat's runtime
//! goroutine source reads) found from `runtime.casgstatus`'s code, as probe-user's
//! `runtime_source::locate` does: the address passed in the first argument register to
//! `(*timeHistogram).record` (Go 1.20+), or else the base of the inline-indexed
//! `sched.timeToRun.counts` (1.17–1.19). For every case of the matrix (amd64 and arm64, stripped
//! too) it must be exactly one address, at the same offset inside `runtime.sched` (from
//! `go tool nm`) on both architectures. A stripped build has the same code as its unstripped
//! twin but not always the same data addresses (go1.19 moves its data sections by 32 bytes), so
//! there the address must sit at the same offset inside the same section as in the twin. Only
//! reads files.

mod common;

use std::collections::BTreeMap;

use common::{Case, matrix};
use gobin::GoBinary;
use object::{Object as _, ObjectSection as _};
use integration_tests::go_build::{self, GoArch};

/// What `runtime_source::locate` finds (kept in step with it).
fn time_to_run(bin: &GoBinary) -> Vec<u64> {
    let cas = bin.function("runtime.casgstatus").expect("casgstatus");
    let mut targets = match bin.function("runtime.(*timeHistogram).record") {
        Ok(record) => bin.lea_args_to(&cas, &record).expect("lea_args_to"),
        Err(_) => Vec::new(),
    };
    if targets.is_empty() {
        targets = bin.lea_indexed_tables(&cas).expect("lea_indexed_tables");
    }
    targets.sort_unstable();
    targets.dedup();
    targets
}

/// `runtime.sched` from `go tool nm` of an unstripped case.
fn sched_address(case: &Case) -> u64 {
    go_build::go_nm(&case.go, &case.path)
        .unwrap_or_else(|e| panic!("{}: {e:#}", case.label()))
        .into_iter()
        .find(|s| s.name == "runtime.sched")
        .and_then(|s| s.address)
        .unwrap_or_else(|| panic!("{}: no runtime.sched symbol", case.label()))
}

/// (section name, offset inside it) of `addr` in the ELF file at `case.path`.
fn in_section(case: &Case, addr: u64) -> (String, u64) {
    let data = std::fs::read(&case.path).expect("read binary");
    let file = object::File::parse(&*data).expect("parse ELF");
    file.sections()
        .filter(|s| s.address() != 0)
        .find(|s| (s.address()..s.address() + s.size()).contains(&addr))
        .map(|s| (s.name().unwrap_or("?").to_owned(), addr - s.address()))
        .unwrap_or_else(|| panic!("{}: {addr:#x} in no section", case.label()))
}

#[test]
fn sched_time_to_run_is_found_at_the_same_offset_on_amd64_and_arm64() {
    // Go version -> arch -> offset inside runtime.sched.
    let mut offsets: BTreeMap<String, BTreeMap<GoArch, u64>> = BTreeMap::new();
    for case in matrix() {
        let l = case.label();
        let bin = GoBinary::open(&case.path).unwrap_or_else(|e| panic!("{l}: {e}"));
        let found = time_to_run(&bin);
        let [addr] = found[..] else { panic!("{l}: expected one timeToRun address, found {found:x?}") };
        if case.variant.is_stripped() {
            let twin = case.twin();
            let twin_found = time_to_run(&GoBinary::open(&twin.path).unwrap_or_else(|e| panic!("{l}: {e}")));
            assert_eq!(twin_found.len(), 1, "{l}: twin");
            assert_eq!(in_section(case, addr), in_section(twin, twin_found[0]), "{l}: not where the unstripped twin has it");
            continue;
        }
        let offset = addr.checked_sub(sched_address(case)).unwrap_or_else(|| panic!("{l}: {addr:#x} below runtime.sched"));
        assert!(offset < 0x4000, "{l}: offset {offset:#x} is not inside runtime.sched");
        let seen = offsets.entry(case.go.version.clone()).or_default().entry(case.arch).or_insert(offset);
        assert_eq!(*seen, offset, "{l}: offset differs between variants");
    }
    for (go, by_arch) in &offsets {
        println!("{go}: runtime.sched.timeToRun at runtime.sched+{by_arch:?}");
        assert_eq!(by_arch.len(), 2, "{go}: both architectures checked");
        let mut it = by_arch.values();
        let first = it.next().unwrap();
        assert!(it.all(|o| o == first), "{go}: offsets differ between architectures: {by_arch:?}");
    }
    assert!(!offsets.is_empty());
}
