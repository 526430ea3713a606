//! A process to watch: its binary (through `/proc/PID/exe`, which works across mount
//! namespaces and for deleted or replaced binaries), name and thread count.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("pid {0}: no such process")]
    NoSuchProcess(u32),
    #[error("pid {pid}: cannot read {what}: {source}")]
    Proc { pid: u32, what: &'static str, source: std::io::Error },
}

/// What golat knows about a running process before attaching.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    /// `/proc/PID/exe`: opening or attaching through it reaches the very file the process runs.
    pub exe_link: PathBuf,
    /// Where the binary was when the process started, as the process sees it.
    pub exe_path: String,
    /// (device, inode) of the binary: one attachment per binary, however many processes run it.
    pub binary_key: (u64, u64),
}

pub fn proc_dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

pub fn exists(pid: u32) -> bool {
    // A zombie still has /proc/PID; `stat` says Z. Treat zombies as gone.
    match fs::read_to_string(proc_dir(pid).join("stat")) {
        Ok(s) => !matches!(s.rsplit_once(')').map(|(_, rest)| rest.trim_start().as_bytes().first()), Some(Some(b'Z' | b'X'))),
        Err(_) => false,
    }
}

pub fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(proc_dir(pid).join("comm")).ok().map(|s| s.trim_end().to_owned())
}

/// Number of OS threads, from `/proc/PID/status`.
pub fn threads(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(proc_dir(pid).join("status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

impl Process {
    pub fn open(pid: u32) -> Result<Process, TargetError> {
        let dir = proc_dir(pid);
        if !dir.exists() {
            return Err(TargetError::NoSuchProcess(pid));
        }
        let exe_link = dir.join("exe");
        let map_err = |what, source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::NotFound {
                TargetError::NoSuchProcess(pid)
            } else {
                TargetError::Proc { pid, what, source }
            }
        };
        let meta = fs::metadata(&exe_link).map_err(|e| map_err("/proc/PID/exe", e))?;
        let exe_path = fs::read_link(&exe_link)
            .map_err(|e| map_err("/proc/PID/exe", e))?
            .to_string_lossy()
            .into_owned();
        Ok(Process {
            pid,
            comm: comm(pid).unwrap_or_default(),
            exe_link,
            exe_path,
            binary_key: (meta.dev(), meta.ino()),
        })
    }
}

/// (device, inode) of a file.
pub fn binary_key(path: &Path) -> std::io::Result<(u64, u64)> {
    let m = fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}
