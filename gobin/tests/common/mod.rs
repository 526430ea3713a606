//! Shared test fixtures: the inspect workload built with every installed Go toolchain, for
//! amd64 and arm64, in every variant this machine can build.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    path::PathBuf,
    sync::OnceLock,
};

use integration_tests::go_build::{self, GoArch, GoToolchain, Variant};

/// One built binary of the matrix.
#[derive(Clone, Debug)]
pub struct Case {
    pub go: GoToolchain,
    pub arch: GoArch,
    pub variant: Variant,
    pub path: PathBuf,
}

impl Case {
    pub fn label(&self) -> String {
        format!("{} {} {}", self.go.version, self.arch, self.variant)
    }

    /// The same build without `-s -w`.
    pub fn twin(&self) -> &'static Case {
        let twin = self.variant.unstripped_twin();
        matrix()
            .iter()
            .find(|c| c.go == self.go && c.arch == self.arch && c.variant == twin)
            .expect("twin of every stripped variant is built")
    }
}

/// Builds (or finds cached) every combination once per test binary. Combinations that this
/// machine cannot build (cgo without a C compiler for the target) are skipped with a note.
pub fn matrix() -> &'static [Case] {
    static MATRIX: OnceLock<Vec<Case>> = OnceLock::new();
    MATRIX.get_or_init(|| {
        let toolchains = go_build::installed_go();
        assert!(!toolchains.is_empty(), "no Go toolchain found under /usr/lib/go*");
        let dir = go_build::workload_dir("inspect");
        let mut out = Vec::new();
        for go in &toolchains {
            for arch in GoArch::ALL {
                for variant in Variant::ALL {
                    if let Err(why) = go_build::can_build_with(go, variant, arch) {
                        eprintln!("skipping {go} {arch} {variant}: {why}");
                        continue;
                    }
                    let path = go_build::build(&dir, go, variant, arch)
                        .unwrap_or_else(|e| panic!("building {go} {arch} {variant}: {e:#}"));
                    out.push(Case { go: go.clone(), arch, variant, path });
                }
            }
        }
        out
    })
}

/// The functions golat hooks or uses to classify events.
pub const HOOKS: &[&str] = &[
    "runtime.casgstatus",
    "runtime.stopTheWorldWithSema",
    "runtime.startTheWorldWithSema",
    "runtime.gcStart",
    "runtime.gcMarkTermination",
    "runtime.gcMarkDone",
    "runtime.stopTheWorld",
    "runtime.execute",
    "runtime.newproc1",
    "runtime.ready",
    "runtime.goexit0",
    "main.main",
];

/// Hook points that exist in some releases only.
pub const OPTIONAL_HOOKS: &[&str] = &["runtime.stopTheWorld.func1"];

/// Functions whose return sites the probes use.
pub const RET_FUNCS: &[&str] = &[
    "runtime.startTheWorldWithSema",
    "runtime.stopTheWorldWithSema",
    "runtime.casgstatus",
];
