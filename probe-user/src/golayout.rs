//! Every fact golat relies on about a Go version's runtime, in one table with its source.
//! Adding a Go version means adding (and testing) a row here; anything outside the table is
//! refused with a clear message instead of guessed.

use probe_common::StwAbi;

/// Go versions golat has been verified against (see docs/design.md for the test matrix).
pub const MIN_GO: (u32, u32) = (1, 17);
pub const MAX_GO: (u32, u32) = (1, 25);
/// arm64 got Go's register ABI (ABIInternal) in go1.18 (release notes of go1.18; Go 1.17 on
/// arm64 passes arguments and results on the stack), and the probes read registers.
pub const MIN_GO_ARM64: (u32, u32) = (1, 18);

pub const FN_STOP_THE_WORLD: &str = "runtime.stopTheWorldWithSema";
pub const FN_START_THE_WORLD: &str = "runtime.startTheWorldWithSema";
pub const FN_GC_MARK_TERMINATION: &str = "runtime.gcMarkTermination";
/// The closure `stopTheWorld` runs on the system stack; a stop called from it is not a GC
/// stop (Go 1.17–1.20 pass no reason).
pub const FN_STOP_THE_WORLD_CLOSURE: &str = "runtime.stopTheWorld.func1";
pub const FN_GC_START: &str = "runtime.gcStart";
/// `casgstatus(gp *g, oldval, newval uint32)`, src/runtime/proc.go, same signature 1.17-1.25.
pub const FN_CASGSTATUS: &str = "runtime.casgstatus";
/// `(*timeHistogram).record`, called by casgstatus with `&sched.timeToRun` (Go 1.20+).
pub const FN_TIME_HISTOGRAM_RECORD: &str = "runtime.(*timeHistogram).record";
pub const FN_GC_MARK_DONE: &str = "runtime.gcMarkDone";
/// Go <= 1.21 time GC pauses with `nanotime()` (inlined: a call to the ABI0 assembly function
/// `runtime.nanotime1`): once in `gcStart` and once in `gcMarkDone` right before stopping the
/// world (the value becomes `work.pauseStart`), and last in `gcMarkTermination` for the end of
/// the mark-termination pause (src/runtime/mgc.go, go1.19 lines 659/848/997). A uprobe right
/// after each call reads the exact value, so golat's pause equals the runtime's.
pub const FN_NANOTIME: &str = "runtime.nanotime1";

/// How golat measures one Go version's stop-the-world pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StwLayout {
    pub abi: StwAbi,
    /// Probe `stopTheWorldWithSema` entry (not needed from 1.22: start carries everything).
    pub probe_stop: bool,
    /// Read the runtime's own pause clock after its `nanotime()` calls (Go <= 1.21).
    pub clock_probes: bool,
    /// Source of this row.
    pub source: &'static str,
}

/// | Go | signatures (src/runtime/proc.go at the release tag) |
/// |---|---|
/// | 1.17–1.20 | `stopTheWorldWithSema()`, `startTheWorldWithSema(emitTraceEvent bool) int64` |
/// | 1.21 | `stopTheWorldWithSema(reason stwReason)`, `startTheWorldWithSema() int64` |
/// | 1.22 | `stopTheWorldWithSema(reason) worldStop{reason, startedStopping}`, `startTheWorldWithSema(now int64, w worldStop) int64` |
/// | 1.23–1.25 | worldStop gains `finishedStopping`, `stoppingCPUTime`; start unchanged |
pub fn stw_layout(major: u32, minor: u32) -> Option<StwLayout> {
    if (major, minor) < MIN_GO || (major, minor) > MAX_GO {
        return None;
    }
    Some(match minor {
        17..=20 => StwLayout {
            abi: StwAbi::NoReason,
            probe_stop: true,
            clock_probes: true,
            source: "go1.17-go1.20 src/runtime/proc.go: stopTheWorldWithSema(), startTheWorldWithSema(bool) int64",
        },
        21 => StwLayout {
            abi: StwAbi::ReasonAtStop,
            probe_stop: true,
            clock_probes: true,
            source: "go1.21 src/runtime/proc.go: stopTheWorldWithSema(reason stwReason), startTheWorldWithSema() int64",
        },
        _ => StwLayout {
            abi: StwAbi::WorldStop,
            probe_stop: false,
            clock_probes: false,
            source: "go1.22+ src/runtime/proc.go: startTheWorldWithSema(now int64, w worldStop) int64",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_range_is_enforced() {
        assert!(stw_layout(1, 16).is_none());
        assert!(stw_layout(1, 26).is_none());
        assert!(stw_layout(2, 0).is_none());
        assert_eq!(stw_layout(1, 19).map(|l| l.abi), Some(StwAbi::NoReason));
        assert_eq!(stw_layout(1, 21).map(|l| l.abi), Some(StwAbi::ReasonAtStop));
        assert_eq!(stw_layout(1, 23).map(|l| l.abi), Some(StwAbi::WorldStop));
    }
}
