//! Property test: mutating a real Go binary's ELF headers, pclntab, build info or code, and
//! truncating it, never makes gobin panic (errors are fine). Bounded to 256 cases.

mod common;

use std::sync::OnceLock;

use common::matrix;
use gobin::GoBinary;
use integration_tests::go_build::{GoArch, Variant};
use proptest::prelude::*;

struct Sample {
    data: Vec<u8>,
    /// `[start, end)` file ranges worth mutating.
    regions: Vec<(usize, usize)>,
}

fn samples() -> &'static [Sample] {
    static SAMPLES: OnceLock<Vec<Sample>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let newest = matrix().last().expect("matrix").go.clone();
        let wanted = [
            (GoArch::Amd64, Variant::Default),
            (GoArch::Arm64, Variant::PieStripped),
            (GoArch::Amd64, Variant::CgoPieStripped),
        ];
        let mut out = Vec::new();
        for (arch, variant) in wanted {
            let Some(case) = matrix().iter().find(|c| c.go == newest && c.arch == arch && c.variant == variant) else {
                continue;
            };
            let data = std::fs::read(&case.path).expect("read");
            let bin = GoBinary::parse(data.clone()).expect("sample parses");
            let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
            let (phoff, shoff) = (u64_at(0x20), u64_at(0x28));
            let pcln = bin.pclntab_info().file_offset as usize;
            let magic = b"\xff Go buildinf:";
            let binfo = data.windows(magic.len()).position(|w| w == magic).expect("buildinfo");
            let casg = bin.function("runtime.casgstatus").expect("casgstatus").file_offset as usize;
            let regions = vec![
                (0, 64),
                (phoff, phoff + 56 * 12),
                (shoff, data.len()),
                (pcln, pcln + 128),
                (pcln, (pcln + 64 * 1024).min(data.len())),
                (binfo, binfo + 512),
                (casg, casg + 256),
            ];
            out.push(Sample { data, regions });
        }
        assert!(!out.is_empty());
        out
    })
}

/// Uses every public query; only panics matter.
fn exercise(data: Vec<u8>) {
    let Ok(bin) = GoBinary::parse(data) else { return };
    let _ = bin.summary();
    let _ = (bin.is_pie(), bin.is_stripped(), bin.has_dwarf(), bin.cgo(), bin.pgo());
    for name in ["runtime.casgstatus", "runtime.stopTheWorldWithSema", "main.main", "x.abi0", "a[b]"] {
        if let Ok(f) = bin.function(name) {
            let _ = bin.return_sites(&f);
            let _ = bin.code(&f);
        }
    }
    for f in bin.functions().take(64) {
        let _ = bin.return_sites(&f);
    }
    let _ = bin.functions_matching("runtime.g").len();
    let _ = bin.struct_offsets();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn parse_never_panics(
        sample in any::<prop::sample::Index>(),
        region in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        cut in prop::option::weighted(0.25, any::<prop::sample::Index>()),
    ) {
        let s = sample.get(samples());
        let (start, end) = *region.get(&s.regions);
        let end = end.min(s.data.len());
        let mut data = s.data.clone();
        if start < end {
            for (at, byte) in &edits {
                let i = start + at.index(end - start);
                data[i] = *byte;
            }
        }
        if let Some(cut) = cut {
            data.truncate(cut.index(data.len()));
        }
        exercise(data);
    }
}
