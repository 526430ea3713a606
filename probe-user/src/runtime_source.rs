//! Goroutine scheduling latency, runtime source: reads the target's own histogram of
//! runnable-to-running times (`runtime.sched.timeToRun`, the data behind the runtime metric
//! `/sched/latencies:seconds`) from its memory at each interval. Costs nothing in the target;
//! the runtime samples 1 in 8 goroutine transitions (`gTrackingPeriod`), so counts are about
//! an eighth of the precise source's, and buckets are as coarse as the runtime's.
//!
//! Layout facts (src/runtime/histogram.go at each release tag):
//!
//! | Go | counts | then | bucket i lower bound (ns) |
//! |---|---|---|---|
//! | 1.17–1.19 | `[45*16]uint64` | `underflow uint64` | i < 16: i; else s=i/16, j=i%16: `1<<(s+3) \| j<<(s-1)` |
//! | 1.20–1.25 | `[40*4]uint64` | `underflow, overflow uint64` | b=i/4, j=i%4: b=0: `j<<6`; else `1<<(b+7) \| j<<(b+5)` |
//!
//! Where the histogram is: `runtime.casgstatus` passes `&sched.timeToRun` to
//! `(*timeHistogram).record` (Go 1.20+: `LEAQ runtime.sched+320(SB), AX; CALL record`), or
//! indexes `sched.timeToRun.counts` inline (1.17–1.19: `LEAQ runtime.sched+312(SB), CX;
//! LEAQ (CX)(AX*8)`), so the address is found in stripped binaries too. arm64 has the same
//! offsets, with `ADRP`+`ADD` pairs instead of `LEAQ` (gobin/src/data_refs.rs).

use std::{fs::File, os::unix::fs::FileExt as _};

use probe_common::{Hist, bucket_index};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistLayout {
    /// Go 1.17–1.19.
    SuperBuckets45x16,
    /// Go 1.20+.
    MinBits9x4,
}

impl HistLayout {
    pub fn for_go(minor: u32) -> Option<HistLayout> {
        match minor {
            17..=19 => Some(HistLayout::SuperBuckets45x16),
            20..=25 => Some(HistLayout::MinBits9x4),
            _ => None,
        }
    }

    pub fn num_counts(self) -> usize {
        match self {
            HistLayout::SuperBuckets45x16 => 45 * 16,
            HistLayout::MinBits9x4 => 40 * 4,
        }
    }

    /// [lower, upper) of count `i`, in ns.
    pub fn bounds(self, i: usize) -> (u64, u64) {
        let lower = |i: usize| -> u64 {
            match self {
                HistLayout::SuperBuckets45x16 => {
                    if i < 16 {
                        i as u64
                    } else {
                        let (s, j) = ((i / 16) as u64, (i % 16) as u64);
                        (1 << (s + 3)) | (j << (s - 1))
                    }
                }
                HistLayout::MinBits9x4 => {
                    let (b, j) = ((i / 4) as u64, (i % 4) as u64);
                    if b == 0 { j << 6 } else { (1 << (b + 7)) | (j << (b + 5)) }
                }
            }
        };
        let hi = if i + 1 < self.num_counts() { lower(i + 1) } else { lower(i) * 2 };
        (lower(i), hi)
    }

    /// The runtime's counts as a golat histogram (bucket midpoints). The exact max is unknown;
    /// the top of the highest non-empty bucket stands for it.
    pub fn to_hist(self, counts: &[u64]) -> Hist {
        let mut h = Hist::ZERO;
        for (i, &c) in counts.iter().enumerate().take(self.num_counts()) {
            if c == 0 {
                continue;
            }
            let (lo, hi) = self.bounds(i);
            let mid = lo + (hi - lo) / 2;
            h.count += c;
            h.sum_ns = h.sum_ns.saturating_add(mid.saturating_mul(c));
            h.max_ns = h.max_ns.max(hi - 1);
            h.buckets[bucket_index(mid)] += c;
        }
        h
    }
}

/// Link-time address of `runtime.sched.timeToRun`, and its layout.
pub fn locate(bin: &gobin::GoBinary) -> Result<(u64, HistLayout), String> {
    let v = bin.build_info().go_version;
    let layout = HistLayout::for_go(v.minor).filter(|_| v.major == 1).ok_or_else(|| format!("no known scheduling histogram layout for {}", bin.build_info().go_version_raw))?;
    let cas = bin.function(crate::golayout::FN_CASGSTATUS).map_err(|e| e.to_string())?;
    let mut targets = match bin.function(crate::golayout::FN_TIME_HISTOGRAM_RECORD) {
        Ok(record) => bin.lea_args_to(&cas, &record).map_err(|e| e.to_string())?,
        Err(_) => Vec::new(),
    };
    if targets.is_empty() {
        targets = bin.lea_indexed_tables(&cas).map_err(|e| e.to_string())?;
    }
    targets.sort_unstable();
    targets.dedup();
    match targets.as_slice() {
        [one] => Ok((*one, layout)),
        [] => Err("runtime.sched.timeToRun not found in runtime.casgstatus".into()),
        many => Err(format!("runtime.sched.timeToRun is ambiguous in runtime.casgstatus ({} candidates)", many.len())),
    }
}

/// Load bias of the process's main binary: where it is mapped minus where it was linked (0
/// unless PIE). `inode` identifies the binary's mappings in `/proc/PID/maps`.
pub fn load_bias(pid: u32, bin: &gobin::GoBinary, inode: u64) -> Result<u64, String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| format!("/proc/{pid}/maps: {e}"))?;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[4].parse::<u64>().ok() != Some(inode) {
            continue;
        }
        let start = u64::from_str_radix(f[0].split('-').next().unwrap_or(""), 16).map_err(|e| e.to_string())?;
        let offset = u64::from_str_radix(f[2], 16).map_err(|e| e.to_string())?;
        let vaddr = bin.file_offset_to_vaddr(offset).ok_or("mapping outside the binary's segments")?;
        return Ok(start.wrapping_sub(vaddr));
    }
    Err(format!("binary not found in /proc/{pid}/maps"))
}

/// Reads one process's histogram through `/proc/PID/mem`.
pub struct RuntimeHistogram {
    mem: File,
    addr: u64,
    layout: HistLayout,
}

impl RuntimeHistogram {
    pub fn open(pid: u32, bin: &gobin::GoBinary, inode: u64) -> Result<RuntimeHistogram, String> {
        let (link, layout) = locate(bin)?;
        let bias = load_bias(pid, bin, inode)?;
        let mem = File::open(format!("/proc/{pid}/mem")).map_err(|e| format!("/proc/{pid}/mem: {e}"))?;
        let h = RuntimeHistogram { mem, addr: link.wrapping_add(bias), layout };
        h.read()?;
        Ok(h)
    }

    /// The cumulative histogram now.
    pub fn read(&self) -> Result<Hist, String> {
        let mut buf = vec![0u8; self.layout.num_counts() * 8];
        self.mem.read_exact_at(&mut buf, self.addr).map_err(|e| format!("reading the runtime's histogram: {e}"))?;
        let counts: Vec<u64> = buf.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        Ok(self.layout.to_hist(&counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_match_the_runtime_metric_buckets() {
        // From timeHistogramMetricsBuckets (go1.19 and go1.21 histogram.go).
        let l = HistLayout::SuperBuckets45x16;
        assert_eq!(l.bounds(0), (0, 1));
        assert_eq!(l.bounds(15), (15, 16));
        assert_eq!(l.bounds(16), (16, 17));
        assert_eq!(l.bounds(32), (32, 34));
        assert_eq!(l.bounds(47), (62, 64));
        let l = HistLayout::MinBits9x4;
        assert_eq!(l.bounds(0), (0, 64));
        assert_eq!(l.bounds(3), (192, 256));
        assert_eq!(l.bounds(4), (256, 320));
        assert_eq!(l.bounds(8), (512, 640));
        // 41943040 ns and 67108864 ns are bucket bounds seen in /sched/latencies on 1.22.
        assert!((0..l.num_counts()).any(|i| l.bounds(i).0 == 41_943_040));
        assert!((0..l.num_counts()).any(|i| l.bounds(i).0 == 67_108_864));
        for i in 0..l.num_counts() - 1 {
            assert_eq!(l.bounds(i).1, l.bounds(i + 1).0);
        }
    }

    #[test]
    fn to_hist_keeps_counts() {
        let l = HistLayout::MinBits9x4;
        let mut counts = vec![0u64; l.num_counts()];
        counts[0] = 5;
        counts[100] = 2;
        let h = l.to_hist(&counts);
        assert_eq!(h.count, 7);
        assert_eq!(h.buckets.iter().sum::<u64>(), 7);
        assert!(h.max_ns >= l.bounds(100).0);
    }
}
