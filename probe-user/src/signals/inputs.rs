//! Gathering a window's inputs that are not golat's own measurements: the runtime's current
//! GOMAXPROCS (from its memory), CPU affinity, cgroup quota, and the process's CPU usage.

use std::{fs::File, os::unix::fs::FileExt as _};

/// Reads `runtime.gomaxprocs` (int32) from a running process. Found from `.symtab` when
/// present, else as the first global `runtime.GOMAXPROCS` loads (amd64).
pub struct GomaxprocsReader {
    mem: File,
    addr: u64,
}

impl GomaxprocsReader {
    pub fn open(pid: u32, bin: &gobin::GoBinary, inode: u64) -> Result<GomaxprocsReader, String> {
        let link = match bin.symbol_address("runtime.gomaxprocs") {
            Some(a) => a,
            None => {
                let f = bin.function("runtime.GOMAXPROCS").map_err(|e| e.to_string())?;
                *bin.rip_loads(&f).map_err(|e| e.to_string())?.first().ok_or("runtime.gomaxprocs not found in runtime.GOMAXPROCS")?
            }
        };
        let bias = crate::runtime_source::load_bias(pid, bin, inode)?;
        let mem = File::open(format!("/proc/{pid}/mem")).map_err(|e| format!("/proc/{pid}/mem: {e}"))?;
        let r = GomaxprocsReader { mem, addr: link.wrapping_add(bias) };
        let v = r.read()?;
        if !(1..=1_000_000).contains(&v) {
            return Err(format!("implausible GOMAXPROCS {v} read: wrong address"));
        }
        Ok(r)
    }

    pub fn read(&self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.mem.read_exact_at(&mut b, self.addr).map_err(|e| format!("reading runtime.gomaxprocs: {e}"))?;
        Ok(i32::from_le_bytes(b).max(0) as u32)
    }
}

/// CPUs in the process's affinity mask (`Cpus_allowed_list` in /proc/PID/status).
pub fn cpus_allowed(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let list = s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?.trim().to_owned();
    let mut n = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()? - a.parse::<u32>().ok()? + 1,
            None => 1,
        };
    }
    Some(n)
}

pub fn cpus_online() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

/// CPU quota of the process's cgroup, in CPUs: v2 `cpu.max` (`max` = none), v1
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 = none). Nested limits are not combined.
pub fn quota_cpus(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.is_empty() {
            let s = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cpu.max")).ok();
            if let Some(s) = s {
                let mut it = s.split_whitespace();
                let (q, p) = (it.next()?, it.next()?.parse::<f64>().ok()?);
                return (q != "max").then(|| q.parse::<f64>().ok().map(|q| q / p)).flatten();
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            let dir = format!("/sys/fs/cgroup/{controllers}{path}");
            let q: i64 = std::fs::read_to_string(format!("{dir}/cpu.cfs_quota_us")).ok()?.trim().parse().ok()?;
            let p: f64 = std::fs::read_to_string(format!("{dir}/cpu.cfs_period_us")).ok()?.trim().parse().ok()?;
            return (q > 0).then(|| q as f64 / p);
        }
    }
    None
}

/// utime + stime of the process, in ns.
pub fn cpu_time_ns(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) * 1_000_000_000 / tck)
}
