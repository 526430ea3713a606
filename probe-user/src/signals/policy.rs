//! The rules. Two named policies: `seed` (the original controller: back off 20% when GC runs
//! more than 12 times a second and goroutine p99 is over 300 µs, else probe +1, 3 windows
//! apart) and `default` (throttling- and CPU-wait-aware, capped by affinity and quota, with
//! hysteresis). Both are pure functions of the window inputs plus a small per-process state.

use super::{Action, Signal, WindowInputs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    Default,
    Seed,
}

/// Tunables of the default policy.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Goroutines waiting longer than this at p99 are "waiting".
    pub goroutine_p99_ns: u64,
    /// Throttled for more than this share of a window counts as throttled.
    pub throttled_fraction: f64,
    /// Goroutine waits are "CPU waits" above this share.
    pub cpu_wait_fraction: f64,
    /// Windows a proposal must hold before it is emitted.
    pub confirm_windows: u32,
    /// Windows to hold after GOMAXPROCS changed.
    pub cooldown_windows: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { goroutine_p99_ns: 1_000_000, throttled_fraction: 0.05, cpu_wait_fraction: 0.5, confirm_windows: 2, cooldown_windows: 3 }
    }
}

/// Per-process memory between windows.
#[derive(Debug, Clone, Default)]
pub struct State {
    last_gomaxprocs: Option<u32>,
    cooldown: u32,
    proposal: Option<(Action, u32)>,
    streak: u32,
    windows_since_change: u32,
    /// Seed policy: windows since it last emitted a change.
    since_emit: Option<u32>,
}

/// The highest GOMAXPROCS that makes sense: the CPUs it may use, and not far above its quota.
fn ceiling(i: &WindowInputs) -> u32 {
    let cpus = i.cpus_allowed.min(i.cpus_online).max(1);
    match i.quota_cpus {
        Some(q) => cpus.min(q.ceil().max(1.0) as u32),
        None => cpus,
    }
}

/// (action, recommended, rule, reason) proposed by one window, before hysteresis.
fn propose_default(i: &WindowInputs, t: &Thresholds) -> (Action, Option<u32>, &'static str, String) {
    let Some(cur) = i.gomaxprocs else {
        return (Action::Hold, None, "unknown_gomaxprocs", "GOMAXPROCS could not be read".into());
    };
    let ceil = ceiling(i);
    let throttled = i.throttled_fraction.is_some_and(|f| f > t.throttled_fraction);
    if cur > ceil {
        return (
            Action::Lower,
            Some(ceil),
            "above_ceiling",
            format!("GOMAXPROCS {cur} is above the {ceil} CPUs it can use (affinity {}, quota {:?})", i.cpus_allowed, i.quota_cpus),
        );
    }
    if throttled && cur > 1 {
        let target = i.quota_cpus.map_or(cur - 1, |q| (q.floor() as u32).clamp(1, cur - 1));
        return (
            Action::Lower,
            Some(target),
            "throttled",
            format!("throttled {:.0}% of the window with GOMAXPROCS {cur}", i.throttled_fraction.unwrap_or(0.0) * 100.0),
        );
    }
    let waiting = i.goroutine_p99_ns.is_some_and(|p| p > t.goroutine_p99_ns);
    let cpu_bound_wait = i.cpu_wait_fraction.is_some_and(|f| f > t.cpu_wait_fraction);
    if waiting && cpu_bound_wait && cur > 1 {
        return (
            Action::Lower,
            Some(cur - 1),
            "cpu_wait_dominates",
            format!("goroutine p99 {} µs, {:.0}% of it waiting for a CPU", i.goroutine_p99_ns.unwrap_or(0) / 1000, i.cpu_wait_fraction.unwrap_or(0.0) * 100.0),
        );
    }
    // Ps mostly busy (usage sampled from /proc at 10 ms resolution), goroutines wait for a P,
    // CPUs free.
    let saturated = i.cpu_usage_cores >= f64::from(cur) * 0.6;
    if waiting && !cpu_bound_wait && !throttled && saturated && cur < ceil {
        return (
            Action::Raise,
            Some(cur + 1),
            "waiting_for_p",
            format!(
                "goroutine p99 {} µs with {:.1} of {cur} Ps busy and {} CPUs usable",
                i.goroutine_p99_ns.unwrap_or(0) / 1000,
                i.cpu_usage_cores,
                ceil
            ),
        );
    }
    (Action::Hold, Some(cur), "steady", "no rule fired".into())
}

fn propose_seed(i: &WindowInputs, state: &State) -> (Action, Option<u32>, &'static str, String) {
    let Some(cur) = i.gomaxprocs else {
        return (Action::Hold, None, "unknown_gomaxprocs", "GOMAXPROCS could not be read".into());
    };
    if state.since_emit.is_some_and(|n| n < 3) {
        return (Action::Hold, Some(cur), "seed_wait", "seed policy waits 3 windows between changes".into());
    }
    let busy_gc = i.gc_cycles_per_second > 12.0;
    let slow = i.goroutine_p99_ns.is_some_and(|p| p > 300_000);
    if busy_gc && slow {
        let target = ((f64::from(cur) * 0.8).floor() as u32).max(1);
        return (Action::Lower, Some(target), "seed_backoff", format!("{:.1} GC/s and goroutine p99 > 300 µs", i.gc_cycles_per_second));
    }
    (Action::Raise, Some(cur + 1), "seed_probe", "seed policy probes +1".into())
}

impl State {
    /// One window: the proposal, then hysteresis (a change must be proposed in
    /// `confirm_windows` windows in a row, and none is made during the cooldown after
    /// GOMAXPROCS changed).
    pub fn update(&mut self, policy: Policy, t: &Thresholds, i: &WindowInputs) -> Signal {
        if let (Some(prev), Some(cur)) = (self.last_gomaxprocs, i.gomaxprocs) {
            if prev != cur {
                self.cooldown = t.cooldown_windows;
                self.windows_since_change = 0;
                self.proposal = None;
                self.streak = 0;
            }
        }
        self.windows_since_change = self.windows_since_change.saturating_add(1);
        self.since_emit = self.since_emit.map(|n| n + 1);
        let (action, recommended, rule, reason) = match policy {
            Policy::Default => propose_default(i, t),
            Policy::Seed => propose_seed(i, self),
        };
        self.last_gomaxprocs = i.gomaxprocs;
        let complete = [i.goroutine_p99_ns.is_some(), i.cpu_wait_fraction.is_some(), i.throttled_fraction.is_some(), i.gomaxprocs.is_some()]
            .iter()
            .filter(|b| **b)
            .count() as f64
            / 4.0;
        let needed = if policy == Policy::Seed { 1 } else { t.confirm_windows };
        let policy_name = match policy {
            Policy::Default => "default",
            Policy::Seed => "seed",
        };
        if action == Action::Hold {
            self.proposal = None;
            self.streak = 0;
            return Signal { action, current: i.gomaxprocs, recommended, confidence: complete, policy: policy_name, rule, reason, confirmations: 0, confirmations_needed: needed, inputs: i.clone() };
        }
        let key = (action, recommended.unwrap_or(0));
        if self.proposal == Some(key) {
            self.streak += 1;
        } else {
            self.proposal = Some(key);
            self.streak = 1;
        }
        let in_cooldown = self.cooldown > 0 && policy == Policy::Default;
        self.cooldown = self.cooldown.saturating_sub(1);
        let confirmed = self.streak >= needed && !in_cooldown;
        if confirmed {
            self.since_emit = Some(0);
        }
        let confidence = complete * (f64::from(self.streak.min(needed)) / f64::from(needed));
        Signal {
            action: if confirmed { action } else { Action::Hold },
            current: i.gomaxprocs,
            recommended: if confirmed { recommended } else { i.gomaxprocs },
            confidence,
            policy: policy_name,
            rule: if confirmed { rule } else if in_cooldown { "cooldown" } else { "confirming" },
            reason: if confirmed { reason } else { format!("{reason} (proposal {action:?} to {}, {}/{needed} windows)", recommended.unwrap_or(0), self.streak) },
            confirmations: self.streak,
            confirmations_needed: needed,
            inputs: i.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> WindowInputs {
        WindowInputs {
            gomaxprocs: Some(2),
            go_minor: 22,
            cpus_allowed: 2,
            cpus_online: 2,
            quota_cpus: None,
            throttled_fraction: Some(0.0),
            cpu_usage_cores: 0.3,
            goroutine_p99_ns: Some(50_000),
            cpu_wait_fraction: Some(0.0),
            os_runq_p99_ns: Some(20_000),
            stw_p95_ns: Some(100_000),
            gc_cycles_per_second: 1.0,
        }
    }

    fn run(policy: Policy, windows: &[WindowInputs]) -> Vec<Signal> {
        let mut s = State::default();
        let t = Thresholds::default();
        windows.iter().map(|w| s.update(policy, &t, w)).collect()
    }

    #[test]
    fn steady_workload_holds() {
        let sigs = run(Policy::Default, &vec![base(); 10]);
        assert!(sigs.iter().all(|s| s.action == Action::Hold && s.recommended == Some(2)));
    }

    #[test]
    fn throttled_process_is_lowered_to_its_quota_after_confirmation() {
        let w = WindowInputs { quota_cpus: Some(1.0), throttled_fraction: Some(0.4), cpu_usage_cores: 1.0, ..base() };
        let sigs = run(Policy::Default, &[w.clone(), w]);
        // GOMAXPROCS 2 is above the ceiling of a 1-CPU quota.
        assert_eq!(sigs[0].action, Action::Hold);
        assert_eq!(sigs[0].rule, "confirming");
        assert_eq!(sigs[1].action, Action::Lower);
        assert_eq!(sigs[1].recommended, Some(1));
        assert_eq!(sigs[1].rule, "above_ceiling");
    }

    #[test]
    fn throttled_within_ceiling_lowers_by_quota() {
        let w = WindowInputs { gomaxprocs: Some(4), cpus_allowed: 8, cpus_online: 8, quota_cpus: Some(4.0), throttled_fraction: Some(0.3), cpu_usage_cores: 3.9, ..base() };
        let sigs = run(Policy::Default, &[w.clone(), w]);
        assert_eq!(sigs[1].action, Action::Lower);
        assert_eq!(sigs[1].rule, "throttled");
        assert_eq!(sigs[1].recommended, Some(3));
    }

    #[test]
    fn goroutines_waiting_for_a_p_with_idle_cpu_raise() {
        let w = WindowInputs { gomaxprocs: Some(1), goroutine_p99_ns: Some(20_000_000), cpu_wait_fraction: Some(0.0), cpu_usage_cores: 1.0, ..base() };
        let sigs = run(Policy::Default, &[w.clone(), w.clone(), w]);
        assert_eq!(sigs[0].action, Action::Hold);
        assert_eq!(sigs[1].action, Action::Raise);
        assert_eq!(sigs[1].recommended, Some(2));
        assert!(sigs[1].confidence > 0.99);
    }

    #[test]
    fn never_raises_above_the_ceiling() {
        let w = WindowInputs { gomaxprocs: Some(2), goroutine_p99_ns: Some(20_000_000), cpu_usage_cores: 2.0, ..base() };
        let sigs = run(Policy::Default, &vec![w; 5]);
        assert!(sigs.iter().all(|s| s.action == Action::Hold), "{sigs:?}");
    }

    #[test]
    fn cpu_wait_dominated_latency_lowers() {
        let w = WindowInputs { gomaxprocs: Some(2), goroutine_p99_ns: Some(5_000_000), cpu_wait_fraction: Some(0.8), cpu_usage_cores: 1.9, ..base() };
        let sigs = run(Policy::Default, &[w.clone(), w]);
        assert_eq!(sigs[1].action, Action::Lower);
        assert_eq!(sigs[1].rule, "cpu_wait_dominates");
    }

    #[test]
    fn flapping_inputs_do_not_flap_the_signal() {
        let up = WindowInputs { gomaxprocs: Some(1), goroutine_p99_ns: Some(20_000_000), cpu_usage_cores: 1.0, ..base() };
        let calm = WindowInputs { gomaxprocs: Some(1), ..base() };
        let sigs = run(Policy::Default, &[up.clone(), calm.clone(), up.clone(), calm, up]);
        assert!(sigs.iter().all(|s| s.action == Action::Hold), "{sigs:?}");
    }

    #[test]
    fn cooldown_after_a_change() {
        let up = WindowInputs { gomaxprocs: Some(1), goroutine_p99_ns: Some(20_000_000), cpu_usage_cores: 1.0, ..base() };
        let mut changed = up.clone();
        changed.gomaxprocs = Some(2);
        changed.cpus_allowed = 4;
        changed.cpus_online = 4;
        changed.cpu_usage_cores = 2.0;
        let sigs = run(Policy::Default, &[up.clone(), up, changed.clone(), changed.clone(), changed.clone(), changed.clone(), changed]);
        assert_eq!(sigs[1].action, Action::Raise);
        assert_eq!(sigs[2].rule, "cooldown");
        assert_eq!(sigs[3].rule, "cooldown");
        assert_eq!(sigs[4].rule, "cooldown");
        assert_eq!(sigs[5].action, Action::Raise, "{:?}", sigs[5]);
    }

    #[test]
    fn missing_inputs_hold_or_lower_confidence() {
        let w = WindowInputs { gomaxprocs: None, ..base() };
        let sigs = run(Policy::Default, &[w]);
        assert_eq!(sigs[0].action, Action::Hold);
        assert_eq!(sigs[0].rule, "unknown_gomaxprocs");
        // No quota, no split (Go < 1.22 or runtime source only): still decides, with less confidence.
        let w = WindowInputs { gomaxprocs: Some(1), go_minor: 19, cpu_wait_fraction: None, throttled_fraction: None, goroutine_p99_ns: Some(20_000_000), cpu_usage_cores: 1.0, ..base() };
        let sigs = run(Policy::Default, &[w.clone(), w]);
        assert_eq!(sigs[1].action, Action::Raise);
        assert!(sigs[1].confidence <= 0.5 + 1e-9, "{}", sigs[1].confidence);
    }

    #[test]
    fn seed_policy_backs_off_20_percent_or_probes_up() {
        let busy = WindowInputs { gomaxprocs: Some(10), gc_cycles_per_second: 15.0, goroutine_p99_ns: Some(400_000), ..base() };
        let sigs = run(Policy::Seed, &[busy.clone()]);
        assert_eq!(sigs[0].action, Action::Lower);
        assert_eq!(sigs[0].recommended, Some(8));
        let calm = WindowInputs { gomaxprocs: Some(4), ..base() };
        let sigs = run(Policy::Seed, &[calm.clone(), calm.clone(), calm.clone(), calm]);
        assert_eq!(sigs[0].action, Action::Raise);
        assert_eq!(sigs[0].recommended, Some(5));
        // Waits 3 windows between changes.
        assert_eq!(sigs[1].rule, "seed_wait");
        assert_eq!(sigs[2].rule, "seed_wait");
        assert_eq!(sigs[3].action, Action::Raise);
    }
}
