//! GOMAXPROCS tuning signals: per process and window, turn the measurements into `raise`,
//! `lower` or `hold`, with the numbers and the rule behind it (docs/signals.md).

pub mod inputs;
pub mod policy;

use serde::Serialize;

/// What one window of one process looked like.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WindowInputs {
    /// Current GOMAXPROCS, read from the runtime's memory (None: unknown).
    pub gomaxprocs: Option<u32>,
    /// Go minor version (1.x); Go >= 1.25 adjusts its default GOMAXPROCS itself.
    pub go_minor: u32,
    /// CPUs the process may run on (affinity), and CPUs online.
    pub cpus_allowed: u32,
    pub cpus_online: u32,
    /// CPU quota of its cgroup in CPUs (None: no quota).
    pub quota_cpus: Option<f64>,
    /// Share of the window its cgroup was throttled (None: no CPU controller).
    pub throttled_fraction: Option<f64>,
    /// CPU the process used, in cores, over the window.
    pub cpu_usage_cores: f64,
    /// Goroutine scheduling latency p99 and the share of it spent waiting for a CPU.
    pub goroutine_p99_ns: Option<u64>,
    pub cpu_wait_fraction: Option<f64>,
    pub os_runq_p99_ns: Option<u64>,
    pub stw_p95_ns: Option<u64>,
    pub gc_cycles_per_second: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Raise,
    Lower,
    Hold,
}

/// The signal for one process after one window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Signal {
    pub action: Action,
    pub current: Option<u32>,
    pub recommended: Option<u32>,
    /// 0..1: how sure the rule is (confirming windows, completeness of its inputs).
    pub confidence: f64,
    /// Which policy and rule decided, and why, in words.
    pub policy: &'static str,
    pub rule: &'static str,
    pub reason: String,
    /// Windows the current proposal has been seen in a row, and how many it needs.
    pub confirmations: u32,
    pub confirmations_needed: u32,
    pub inputs: WindowInputs,
}
