//! `golat inspect`: what golat knows about a Go binary or process and whether it can attach.
//! Reads files only: a path needs no privileges (a pid needs access to `/proc/PID/exe`).

use std::path::PathBuf;

use serde::Serialize;

use crate::{hooks, report::json_line, target};

/// Show a Go binary's version, build, hook sites, struct offsets and attachability.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A process id, or the path of a binary.
    pub target: String,
    /// One JSON object (`{"type": "inspect", "data": ...}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Inspection {
    path: String,
    pid: Option<u32>,
    binary: gobin::Summary,
    struct_offsets: Option<gobin::StructOffsets>,
    struct_offsets_error: Option<String>,
    plan: Option<hooks::Plan>,
    can_attach: bool,
    problems: Vec<String>,
}

pub fn run(args: &InspectArgs) -> anyhow::Result<i32> {
    let (path, pid) = match args.target.parse::<u32>() {
        Ok(pid) => {
            let p = target::Process::open(pid)?;
            (p.exe_link, Some(pid))
        }
        Err(_) => (PathBuf::from(&args.target), None),
    };
    // gobin errors already name the path.
    let bin = gobin::GoBinary::open(&path)?;
    let mut problems = Vec::new();
    let (struct_offsets, struct_offsets_error) = match bin.struct_offsets() {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let plan = match hooks::plan(&bin) {
        Ok(p) => {
            problems.extend(p.clock_warning.clone());
            Some(p)
        }
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let ins = Inspection {
        path: path.display().to_string(),
        pid,
        binary: bin.summary(),
        struct_offsets,
        struct_offsets_error,
        can_attach: plan.is_some(),
        plan,
        problems,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        json_line(&mut out, "inspect", &ins)?;
    } else {
        human(&mut out, &ins)?;
    }
    Ok(if ins.can_attach { 0 } else { 1 })
}

fn human(out: &mut impl std::io::Write, i: &Inspection) -> std::io::Result<()> {
    let b = &i.binary;
    writeln!(out, "{}{}", i.path, i.pid.map(|p| format!(" (pid {p})")).unwrap_or_default())?;
    writeln!(out, "  go version   {}", b.build_info.go_version_raw)?;
    if let Some(m) = &b.build_info.main_module {
        writeln!(out, "  module       {} {}", m.path, m.version)?;
    }
    writeln!(
        out,
        "  build        {}, {}, {}, {}, cgo {}, pgo {}",
        b.arch,
        if b.pie { "PIE" } else { "not PIE" },
        if b.stripped { "stripped (no .symtab)" } else { "symbols" },
        if b.dwarf { "DWARF" } else { "no DWARF" },
        if b.cgo { "yes" } else { "no" },
        if b.pgo { "yes" } else { "no" }
    )?;
    match &i.struct_offsets {
        Some(o) => {
            let src = |s: &gobin::OffsetSource| match s {
                gobin::OffsetSource::Dwarf => "DWARF".to_owned(),
                gobin::OffsetSource::Table { go_range, .. } => format!("table {go_range}"),
            };
            writeln!(
                out,
                "  offsets      g.goid +{} ({}), g.atomicstatus +{}, g.m +{}, m.curg +{}, m.procid +{}",
                o.g_goid.offset,
                src(&o.g_goid.source),
                o.g_atomicstatus.offset,
                o.g_m.offset,
                o.m_curg.offset,
                o.m_procid.offset
            )?;
        }
        None => writeln!(out, "  offsets      unknown: {}", i.struct_offsets_error.as_deref().unwrap_or("?"))?,
    }
    if let Some(p) = &i.plan {
        writeln!(out, "  stop-the-world ABI {} ({})", p.stw_abi, p.stw_source)?;
        writeln!(out, "  hooks")?;
        for h in &p.hooks {
            let sites: Vec<String> = h.sites.iter().map(|s| format!("{:#x}@{:#x}", s.address, s.file_offset)).collect();
            writeln!(out, "    {:<20} {:<32} {:<10} {}", h.program, h.function, h.kind, sites.join(" "))?;
        }
    }
    for pr in &i.problems {
        writeln!(out, "  problem: {pr}")?;
    }
    writeln!(out, "  can attach   {}", if i.can_attach { "yes" } else { "no" })?;
    out.flush()
}
