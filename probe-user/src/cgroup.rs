//! CPU throttling of a process's cgroup (v2 `cpu.stat` `throttled_usec`, v1 `throttled_time`).

use std::{fs, path::PathBuf};

/// The cgroup directory with the process's CPU controller files, if any.
fn cpu_dir(pid: u32) -> Option<(PathBuf, bool)> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.is_empty() {
            // cgroup v2 unified hierarchy. Through /proc/PID/root would show the container's
            // view; the host path is what the agent can read.
            return Some((PathBuf::from(format!("/sys/fs/cgroup{path}")), true));
        }
        if controllers.split(',').any(|c| c == "cpu") {
            return Some((PathBuf::from(format!("/sys/fs/cgroup/{controllers}{path}")), false));
        }
    }
    None
}

/// Total time the process's cgroup was throttled, in ns, or None when there is no CPU
/// controller for it (e.g. the root cgroup, or the controller is not enabled).
pub fn throttled_ns(pid: u32) -> Option<u64> {
    let (dir, v2) = cpu_dir(pid)?;
    let stat = fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let (key, mult) = if v2 { ("throttled_usec", 1000) } else { ("throttled_time", 1) };
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse::<u64>().ok().map(|n| n * mult)).flatten()
    })
}
