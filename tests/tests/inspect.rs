//! `golat inspect` on real binaries of every installed Go version and build variant: it must
//! find the same hook sites in a stripped binary as in its unstripped twin, and refuse clearly
//! what it cannot attach to. Reads files only (no root needed).

use integration_tests::{
    go_build::{self, GoArch, Variant},
    harness::{build_workload, go_toolchains, golat, golat_bin},
};
use serde_json::Value;

fn inspect(path: &std::path::Path) -> (bool, Value) {
    let out = golat().args(["inspect", "--json"]).arg(path).output().expect("run golat inspect");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line} {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["type"], "inspect");
    (out.status.success(), v["data"].clone())
}

/// (program, function, kind, [(address, file_offset)]) of every hook.
fn hook_sites(plan: &Value) -> Vec<(String, String, String, Vec<(u64, u64)>)> {
    plan["hooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .map(|h| {
            let sites = h["sites"].as_array().expect("sites").iter().map(|s| (s["address"].as_u64().unwrap(), s["file_offset"].as_u64().unwrap())).collect();
            (h["program"].to_string(), h["function"].to_string(), h["kind"].to_string(), sites)
        })
        .collect()
}

#[test]
fn stripped_binaries_get_the_same_hooks_as_their_unstripped_twins() {
    if !golat_bin().exists() {
        assert!(!integration_tests::harness::in_ci(), "golat not built");
        eprintln!("SKIPPED: {} not built", golat_bin().display());
        return;
    }
    let arch = GoArch::host().expect("host arch");
    for go in go_toolchains() {
        for variant in [Variant::Stripped, Variant::PieStripped, Variant::CgoPieStripped] {
            if go_build::can_build(variant, arch).is_err() {
                continue;
            }
            let label = format!("{} {}", go.version, variant.name());
            let stripped = build_workload("gcstw", &go, variant);
            let twin = build_workload("gcstw", &go, variant.unstripped_twin());
            let (ok_s, s) = inspect(&stripped);
            let (ok_t, t) = inspect(&twin);
            assert!(ok_s && ok_t, "{label}: can attach\n{s}\n{t}");
            assert_eq!(s["binary"]["stripped"], true, "{label}");
            assert_eq!(t["binary"]["stripped"], false, "{label}");
            assert_eq!(s["binary"]["build_info"]["go_version_raw"], go.version.as_str(), "{label}");
            assert_eq!(s["binary"]["pie"], variant.is_pie(), "{label}");
            assert_eq!(s["can_attach"], true);
            assert_eq!(s["plan"]["exact_pause_clock"], true, "{label}");
            let (hs, ht) = (hook_sites(&s["plan"]), hook_sites(&t["plan"]));
            assert!(hs.len() >= 3, "{label}: {hs:?}");
            assert_eq!(hs, ht, "{label}: stripped and unstripped hook sites differ");
            // Struct offsets: DWARF in the twin, the version table in the stripped one, equal.
            let (os, ot) = (&s["struct_offsets"], &t["struct_offsets"]);
            assert_eq!(os["g_goid"]["offset"], ot["g_goid"]["offset"], "{label}: goid offset");
            assert_eq!(ot["g_goid"]["source"], "dwarf", "{label}: {ot}");
            println!("{label}: {} hooks, identical to the unstripped twin; goid at +{}", hs.len(), os["g_goid"]["offset"]);
        }
    }
}

#[test]
fn non_go_and_missing_files_are_refused_in_one_line() {
    if !golat_bin().exists() {
        assert!(!integration_tests::harness::in_ci(), "golat not built");
        return;
    }
    for (path, want) in [("/bin/ls", "not a Go binary"), ("/nonexistent/golat-test", "cannot read"), ("/", "cannot read")] {
        let out = golat().args(["inspect", path]).output().expect("run golat inspect");
        assert!(!out.status.success(), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{path}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{path}: {err}");
    }
}
