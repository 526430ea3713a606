//! What the machine must provide before anything is loaded: privileges, kernel BTF, tracefs.
//! Each failure is one line that says how to fix it.

use std::{fs, path::Path};

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error(
        "golat needs root, or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE (missing: {0}); run it with sudo"
    )]
    NotPrivileged(String),
    #[error(
        "kernel BTF not found at /sys/kernel/btf/vmlinux: golat needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,
    #[error("cannot read kernel BTF: {0}")]
    Btf(String),
    #[error("kernel BTF has no {0}: unsupported kernel")]
    BtfMissingField(&'static str),
}

const TRACEFS: &str = "/sys/kernel/tracing";

fn cap_effective() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Fails unless the process may load BPF programs and open uprobe perf events.
pub fn check_privileges() -> Result<(), SystemError> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_SYS_RESOURCE: u32 = 24;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let caps = cap_effective();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON"), (CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE")]
        .into_iter()
        .filter(|(c, _)| !has(*c))
        .map(|(_, n)| n)
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(SystemError::NotPrivileged(missing.join(", "))) }
}

/// Mounts tracefs if it is not mounted. golat attaches through perf events and BTF, which do
/// not need tracefs, but kernels that lack the uprobe PMU fall back to tracefs, and operators
/// inspecting the probes expect it. Returns a warning to print when it cannot be mounted.
pub fn ensure_tracefs() -> Option<String> {
    let mounted = fs::read_to_string("/proc/self/mounts")
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(2) == Some("tracefs")))
        .unwrap_or(false);
    if mounted {
        return None;
    }
    let target = std::ffi::CString::new(TRACEFS).expect("no NUL");
    let fstype = std::ffi::CString::new("tracefs").expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null())
    };
    if rc == 0 {
        log::info!("mounted tracefs at {TRACEFS}");
        None
    } else {
        Some(format!(
            "tracefs is not mounted and mounting it failed ({}); if attaching fails, run `mount -t tracefs tracefs {TRACEFS}`",
            std::io::Error::last_os_error()
        ))
    }
}

/// Byte offsets of the `task_struct` fields the scheduler programs read.
#[derive(Debug, Clone, Copy)]
pub struct TaskOffsets {
    pub pid: u32,
    pub tgid: u32,
}

pub fn task_offsets() -> Result<TaskOffsets, SystemError> {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    if !path.exists() {
        return Err(SystemError::NoBtf);
    }
    let btf = btf_rs::Btf::from_file(path).map_err(|e| SystemError::Btf(e.to_string()))?;
    let types = btf.resolve_types_by_name("task_struct").map_err(|e| SystemError::Btf(e.to_string()))?;
    let task = types
        .iter()
        .find_map(|t| match t {
            btf_rs::Type::Struct(s) => Some(s),
            _ => None,
        })
        .ok_or(SystemError::BtfMissingField("struct task_struct"))?;
    let field = |name: &'static str| -> Result<u32, SystemError> {
        task.members
            .iter()
            .find(|m| btf.resolve_name(*m).is_ok_and(|n| n == name))
            .map(|m| m.bit_offset() / 8)
            .ok_or(SystemError::BtfMissingField(name))
    };
    Ok(TaskOffsets { pid: field("pid")?, tgid: field("tgid")? })
}
