//! Which eBPF program goes on which instruction of a Go binary: a pure function of the binary
//! (no privileges), used by `record` to attach and by `inspect` to show what it would do.

use probe_common::{
    BinaryConfig, CLOCK_ROLE_MARK_TERM_END, CLOCK_ROLE_PAUSE_BEGIN, CLOCK_ROLE_SHIFT, StwAbi, names::*,
};
use serde::Serialize;

use crate::golayout::{self, StwLayout};

/// One probe site.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    /// Link-time virtual address of the instruction.
    pub address: u64,
    /// Offset in the file (what the uprobe is attached at).
    pub file_offset: u64,
    /// Bits OR-ed into the binary id in the attach cookie (the `gc_clock` role).
    #[serde(skip)]
    pub cookie_bits: u64,
}

/// One program and the function whose sites it goes on.
#[derive(Debug, Clone, Serialize)]
pub struct Hook {
    pub program: &'static str,
    pub function: &'static str,
    /// `entry`, `return` (every RET), or `after_call` (right after a call to `runtime.nanotime1`).
    pub kind: &'static str,
    pub sites: Vec<Site>,
}

/// Everything needed to attach to one binary.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub go_version: String,
    pub stw_abi: &'static str,
    pub stw_source: &'static str,
    pub hooks: Vec<Hook>,
    #[serde(skip)]
    pub config: BinaryConfig,
    /// GC pause times come from the runtime's own clock values (`false`: see `clock_warning`).
    pub exact_pause_clock: bool,
    pub clock_warning: Option<String>,
    /// `runtime.casgstatus` entry, for the precise goroutine source (duty-cycled); `None`
    /// when it cannot be trusted (PGO builds may inline it).
    pub sched_hook: Option<Hook>,
    /// Other things that work less well on this binary.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("Go {version} is not supported (golat supports go{}.{} to go{}.{})", golayout::MIN_GO.0, golayout::MIN_GO.1, golayout::MAX_GO.0, golayout::MAX_GO.1)]
    UnsupportedGo { version: String },
    #[error("cannot attach to {function}: {source}")]
    Hook { function: &'static str, source: gobin::Error },
}

fn abi_name(abi: StwAbi) -> &'static str {
    match abi {
        StwAbi::NoReason => "no_reason (go1.17-1.20)",
        StwAbi::ReasonAtStop => "reason_at_stop (go1.21)",
        StwAbi::WorldStop => "world_stop (go1.22+)",
    }
}

fn sites(list: Vec<gobin::Site>, cookie_bits: u64) -> Vec<Site> {
    list.into_iter().map(|s| Site { address: s.address, file_offset: s.file_offset, cookie_bits }).collect()
}

pub fn plan(bin: &gobin::GoBinary) -> Result<Plan, PlanError> {
    let v = bin.build_info().go_version;
    let go_version = bin.build_info().go_version_raw.clone();
    let stw: StwLayout = golayout::stw_layout(v.major, v.minor).ok_or_else(|| PlanError::UnsupportedGo { version: go_version.clone() })?;
    if bin.arch() == gobin::Arch::Arm64 && (v.major, v.minor) < golayout::MIN_GO_ARM64 {
        let (a, b) = golayout::MIN_GO_ARM64;
        return Err(PlanError::UnsupportedGo { version: format!("{go_version} on arm64 (needs go{a}.{b}+, Go's register ABI)") });
    }
    let resolve = |function: &'static str| bin.function(function).map_err(|source| PlanError::Hook { function, source });
    let entry = |program, function: &'static str| -> Result<Hook, PlanError> {
        let f = resolve(function)?;
        Ok(Hook { program, function, kind: "entry", sites: vec![Site { address: f.address, file_offset: f.file_offset, cookie_bits: 0 }] })
    };

    let mut hooks = Vec::new();
    let start = resolve(golayout::FN_START_THE_WORLD)?;
    let rets = bin.return_sites(&start).map_err(|source| PlanError::Hook { function: golayout::FN_START_THE_WORLD, source })?;
    hooks.push(entry(PROG_STW_START_ENTRY, golayout::FN_START_THE_WORLD)?);
    hooks.push(Hook { program: PROG_STW_START_RET, function: golayout::FN_START_THE_WORLD, kind: "return", sites: sites(rets, 0) });
    hooks.push(entry(PROG_GC_MARK_TERM_ENTRY, golayout::FN_GC_MARK_TERMINATION)?);

    // goid offset for exemplars: DWARF, else the version table; a binary without either still
    // gets latencies, only its exemplars have goid 0.
    let (g_goid_off, offsets_warning) = match bin.struct_offsets() {
        Ok(o) => (u32::try_from(o.g_goid.offset).unwrap_or(0), None),
        Err(e) => (0, Some(format!("{e}; exemplars will have goid 0"))),
    };
    let mut config = BinaryConfig { stw_abi: stw.abi as u32, g_goid_off, other_caller_lo: 0, other_caller_hi: 0 };
    // Goroutine state changes: attached only while precise sampling is on.
    let sched_hook = if bin.pgo() {
        None
    } else {
        Some(entry(PROG_CASGSTATUS, golayout::FN_CASGSTATUS)?)
    };
    let sched_warning = bin.pgo().then(|| {
        "PGO build: runtime.casgstatus may be inlined, so the precise goroutine source is off for this binary".to_owned()
    });
    if stw.probe_stop {
        let stop = resolve(golayout::FN_STOP_THE_WORLD)?;
        hooks.push(entry(PROG_STW_STOP_ENTRY, golayout::FN_STOP_THE_WORLD)?);
        if stw.abi == StwAbi::NoReason {
            // Relative to the stop function's entry, so PIE load addresses cancel out.
            let closure = resolve(golayout::FN_STOP_THE_WORLD_CLOSURE)?;
            config.other_caller_lo = closure.address as i64 - stop.address as i64;
            config.other_caller_hi = closure.end() as i64 - stop.address as i64;
        }
    }

    let (mut exact_pause_clock, mut clock_warning) = (true, None);
    if stw.clock_probes {
        match clock_hooks(bin) {
            Ok(h) => hooks.extend(h),
            Err(e) => {
                // Still usable: pauses are then timed with the probes' clock, which misses the
                // uprobe trap latency at the start of each pause.
                exact_pause_clock = false;
                clock_warning = Some(format!("{e}; GC pause times will be approximate"));
            }
        }
    }
    Ok(Plan {
        go_version,
        stw_abi: abi_name(stw.abi),
        stw_source: stw.source,
        hooks,
        sched_hook,
        config,
        exact_pause_clock,
        clock_warning,
        warnings: [offsets_warning, sched_warning].into_iter().flatten().collect(),
    })
}

/// The `gc_clock` sites for Go <= 1.21 (see [`golayout::FN_NANOTIME`]).
fn clock_hooks(bin: &gobin::GoBinary) -> Result<Vec<Hook>, gobin::Error> {
    let nanotime = bin.function(golayout::FN_NANOTIME)?;
    let mut hooks = Vec::new();
    for caller in [golayout::FN_GC_START, golayout::FN_GC_MARK_DONE] {
        let found = bin.call_return_sites(&bin.function(caller)?, &nanotime)?;
        if found.len() != 1 {
            return Err(gobin::Error::Unsupported {
                what: format!("{caller} calls {} {} times, expected once", golayout::FN_NANOTIME, found.len()),
            });
        }
        hooks.push(Hook {
            program: PROG_GC_CLOCK,
            function: caller,
            kind: "after_call",
            sites: sites(found, CLOCK_ROLE_PAUSE_BEGIN << CLOCK_ROLE_SHIFT),
        });
    }
    let mut term = bin.call_return_sites(&bin.function(golayout::FN_GC_MARK_TERMINATION)?, &nanotime)?;
    // The last call is the `now` that ends the pause; the first is the phase's start time.
    let last = term.pop().ok_or_else(|| gobin::Error::FunctionNotFound(golayout::FN_NANOTIME.into()))?;
    hooks.push(Hook {
        program: PROG_GC_CLOCK,
        function: golayout::FN_GC_MARK_TERMINATION,
        kind: "after_call",
        sites: sites(vec![last], CLOCK_ROLE_MARK_TERM_END << CLOCK_ROLE_SHIFT),
    });
    Ok(hooks)
}
