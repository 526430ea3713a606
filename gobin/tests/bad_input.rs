//! Inputs that are not a supported Go binary: each gives one clear error, never a panic.

mod common;

use std::path::Path;

use common::matrix;
use gobin::{Error, GoBinary, GoVersion, MIN_GO_VERSION};
use integration_tests::go_build::{GoArch, Variant};

/// The newest toolchain's build of `variant` for amd64.
fn sample(variant: Variant) -> Vec<u8> {
    let newest = matrix().last().expect("matrix").go.clone();
    let case = matrix()
        .iter()
        .find(|c| c.go == newest && c.arch == GoArch::Amd64 && c.variant == variant)
        .expect("sample build");
    std::fs::read(&case.path).expect("read sample")
}

/// A tiny deterministic generator (xorshift) so failures reproduce.
fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn empty_and_random_bytes_are_not_elf() {
    assert!(matches!(GoBinary::parse(Vec::new()), Err(Error::NotElf)));
    assert!(matches!(GoBinary::parse(b"\x7fEL".to_vec()), Err(Error::NotElf)));
    for seed in 1..50 {
        let data = pseudo_random(1 + seed as usize * 97, seed);
        assert!(matches!(GoBinary::parse(data), Err(Error::NotElf)), "seed {seed}");
    }
    // ELF magic followed by garbage: some error, no panic.
    for seed in 1..200 {
        let mut data = pseudo_random(seed as usize * 13, seed);
        data.splice(0..4.min(data.len()), *b"\x7fELF");
        assert!(GoBinary::parse(data).is_err(), "seed {seed}");
    }
}

#[test]
fn missing_path_and_directory_are_io_errors() {
    let missing = Path::new("/nonexistent/golat/binary");
    match GoBinary::open(missing) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(GoBinary::open(Path::new("/")), Err(Error::Io { .. })));
    let msg = GoBinary::open(missing).unwrap_err().to_string();
    assert!(msg.contains("/nonexistent/golat/binary"), "{msg}");
}

#[test]
fn non_go_elf_is_not_go() {
    for path in ["/bin/ls", "/bin/sh", "/usr/bin/env"] {
        let p = Path::new(path);
        if !p.exists() {
            continue;
        }
        match GoBinary::open(p) {
            Err(Error::NotGo) => {}
            Err(Error::UnsupportedArch(_)) if std::env::consts::ARCH != "x86_64" && std::env::consts::ARCH != "aarch64" => {}
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn truncated_binaries_say_truncated() {
    let data = sample(Variant::Default);
    let len = data.len();
    for cut in [0, 1, 3] {
        assert!(matches!(GoBinary::parse(data[..cut].to_vec()), Err(Error::NotElf)), "cut {cut}");
    }
    for cut in [4, 16, 20, 63, 64, 100, 4096, len / 8, len / 4, len / 2, len - 4096, len - 65, len - 1] {
        match GoBinary::parse(data[..cut].to_vec()) {
            Err(Error::Truncated { needed, len: have, .. }) => {
                assert_eq!(have, cut as u64);
                assert!(needed > have, "cut {cut}");
            }
            other => panic!("cut {cut} of {len}: {other:?}"),
        }
    }
    // Every cut of a stripped binary, at a coarse stride: an error, no panic.
    let data = sample(Variant::Stripped);
    for cut in (0..data.len()).step_by(data.len() / 97) {
        assert!(GoBinary::parse(data[..cut].to_vec()).is_err(), "cut {cut}");
    }
}

/// Replaces every occurrence of `from` with `to` (same length): the version string is both in
/// `.go.buildinfo` and in `runtime.buildVersion`'s data.
fn patch(data: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= data.len() {
        if &data[i..i + from.len()] == from {
            data[i..i + to.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(n > 0, "pattern not found");
}

#[test]
fn old_go_version_is_refused() {
    let case = matrix().last().expect("matrix");
    let mut data = std::fs::read(&case.path).unwrap();
    // The version string in .go.buildinfo (inline since Go 1.18), e.g. "go1.23.5": keep the
    // length, make it "go1.16" + padding digits.
    let v = case.go.version.as_bytes().to_vec();
    let mut old = b"go1.16".to_vec();
    old.resize(v.len(), b'9');
    if v.len() > 7 {
        old[6] = b'.';
    }
    patch(&mut data, &v, &old);
    match GoBinary::parse(data) {
        Err(Error::UnsupportedGoVersion { found, min }) => {
            assert!(found.starts_with("go1.16"), "{found}");
            assert_eq!(min, MIN_GO_VERSION);
            assert_eq!(min, GoVersion::new(1, 17, 0));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_version_without_dwarf_refuses_struct_offsets() {
    let case = matrix()
        .iter()
        .rev()
        .find(|c| c.variant == Variant::Stripped)
        .expect("a stripped build");
    let mut data = std::fs::read(&case.path).unwrap();
    let v = case.go.version.as_bytes().to_vec();
    // Same length, a minor release no table row covers.
    let mut future = b"go1.9".to_vec();
    future.resize(v.len() - 1, b'9');
    future.push(b'9');
    future[5] = b'9';
    patch(&mut data, &v, &future);
    let bin = GoBinary::parse(data).expect("parses with a future version");
    assert!(bin.go_version() > GoVersion::new(1, 90, 0), "{:?}", bin.go_version());
    match bin.struct_offsets() {
        Err(Error::UnknownLayout { version }) => assert_eq!(version.as_bytes(), &future[..]),
        other => panic!("{other:?}"),
    }
    // Functions still resolve.
    bin.function("runtime.casgstatus").expect("casgstatus");
}

#[test]
fn foreign_architectures_are_refused() {
    let data = sample(Variant::Default);
    // ELFCLASS32
    let mut d = data.clone();
    d[4] = 1;
    assert!(matches!(GoBinary::parse(d), Err(Error::UnsupportedArch(m)) if m.starts_with("32-bit")));
    // Big-endian
    let mut d = data.clone();
    d[5] = 2;
    assert!(matches!(GoBinary::parse(d), Err(Error::UnsupportedArch(m)) if m.starts_with("big-endian")));
    // e_machine = EM_RISCV
    let mut d = data;
    d[18..20].copy_from_slice(&243u16.to_le_bytes());
    assert!(matches!(GoBinary::parse(d), Err(Error::UnsupportedArch(m)) if m == "riscv"));
}

#[test]
fn no_return_sites_is_an_error() {
    let data = sample(Variant::Default);
    let bin = GoBinary::parse(data).unwrap();
    // runtime.goexit0 and runtime.mstart end in calls that never return: find some function
    // without RET and check the error names it.
    let f = bin
        .functions()
        .find(|f| bin.return_sites(f).is_err())
        .expect("some function without RET");
    match bin.return_sites(&f) {
        Err(Error::NoReturnSites { function }) => assert_eq!(function, f.name),
        other => panic!("{other:?}"),
    }
}
