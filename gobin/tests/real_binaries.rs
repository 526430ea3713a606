//! Large real-world Go binaries: the installed toolchains' own `go`, `gofmt` and tools, as
//! built by their packagers (Debian's are cgo or stripped, depending on the release).

mod common;

use std::{collections::HashMap, path::PathBuf, time::Instant};

use common::{HOOKS, RET_FUNCS};
use gobin::{AddressSource, GoBinary, OffsetSource};
use integration_tests::go_build;

fn toolchain_binaries(go: &go_build::GoToolchain) -> Vec<PathBuf> {
    let Some(bin_dir) = go.go.canonicalize().ok().and_then(|p| p.parent().map(|p| p.to_path_buf())) else {
        return Vec::new();
    };
    let mut out = vec![bin_dir.join("go"), bin_dir.join("gofmt")];
    if let Some(root) = bin_dir.parent() {
        for tool in ["compile", "link", "vet"] {
            out.push(root.join("pkg/tool/linux_amd64").join(tool));
            out.push(root.join("pkg/tool/linux_arm64").join(tool));
        }
    }
    out.retain(|p| p.is_file());
    out
}

#[test]
fn toolchain_binaries_resolve_hooks() {
    let mut seen = 0;
    for go in go_build::installed_go() {
        for path in toolchain_binaries(&go) {
            let l = path.display().to_string();
            let t = Instant::now();
            let bin = GoBinary::open(&path).unwrap_or_else(|e| panic!("{l}: {e}"));
            let hooks: Vec<_> = HOOKS
                .iter()
                .map(|n| bin.function(n).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect();
            let elapsed = t.elapsed();
            seen += 1;
            println!(
                "{l}: {} pie={} stripped={} cgo={} dwarf={} nfunc={} parse+lookups {elapsed:?}",
                bin.build_info().go_version_raw,
                bin.is_pie(),
                bin.is_stripped(),
                bin.cgo(),
                bin.has_dwarf(),
                bin.pclntab_info().nfunc
            );
            assert!(bin.go_version() >= gobin::MIN_GO_VERSION, "{l}");
            for name in RET_FUNCS {
                let f = bin.function(name).unwrap();
                assert!(!bin.return_sites(&f).unwrap_or_else(|e| panic!("{l}: {e}")).is_empty());
            }
            let offsets = bin.struct_offsets().unwrap_or_else(|e| panic!("{l}: {e}"));
            if let Ok(table) = bin.struct_offsets_from_table() {
                let dwarf_or_table = |o: &gobin::StructOffsets| (o.g_goid.offset, o.g_atomicstatus.offset, o.m_curg.offset);
                assert_eq!(dwarf_or_table(&offsets), dwarf_or_table(&table), "{l}");
            }
            assert_eq!(
                matches!(offsets.g_goid.source, OffsetSource::Dwarf),
                bin.has_dwarf(),
                "{l}"
            );
            if !bin.is_stripped() {
                let nm: HashMap<String, u64> = go_build::go_nm(&go, &path)
                    .unwrap_or_else(|e| panic!("{l}: {e:#}"))
                    .into_iter()
                    .filter_map(|s| Some((s.name, s.address?)))
                    .collect();
                for f in &hooks {
                    assert_eq!(nm.get(&f.name), Some(&f.address), "{l}: {}", f.name);
                    let p = bin.function_from(&f.name, AddressSource::Pclntab).unwrap();
                    assert_eq!(p.address, f.address, "{l}: {}", f.name);
                }
            }
        }
    }
    assert!(seen > 0, "no toolchain binaries found");
}
