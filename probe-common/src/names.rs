//! Map and program names, used by both sides so that a rename cannot break only one of them.

pub const MAP_WATCHED: &str = "WATCHED";
pub const MAP_BINARIES: &str = "BINARIES";
pub const MAP_HISTS: &str = "HISTS";
pub const MAP_PROC_COUNTERS: &str = "PROC_COUNTERS";
pub const MAP_ERRORS: &str = "ERRORS";
pub const MAP_STW_STATE: &str = "STW_STATE";
pub const MAP_THREAD_WAKE: &str = "THREAD_WAKE";
pub const MAP_RUNNABLE_SINCE: &str = "RUNNABLE_SINCE";
pub const MAP_THREAD_LAST_RUNQ: &str = "THREAD_LAST_RUNQ";
pub const MAP_EXEMPLARS: &str = "EXEMPLARS";
pub const MAP_SAMPLING: &str = "SAMPLING";
pub const MAP_EXEC_EVENTS: &str = "EXEC_EVENTS";

pub const PROG_STW_STOP_ENTRY: &str = "stw_stop_entry";
pub const PROG_STW_START_ENTRY: &str = "stw_start_entry";
pub const PROG_STW_START_RET: &str = "stw_start_ret";
pub const PROG_GC_MARK_TERM_ENTRY: &str = "gc_mark_term_entry";
pub const PROG_GC_CLOCK: &str = "gc_clock";
pub const PROG_CASGSTATUS: &str = "goroutine_casgstatus";
/// An empty uprobe program: benchmarks put it on the precise source's sites to measure the
/// bare cost of the traps.
pub const PROG_CALIB_NOOP: &str = "calib_noop";
pub const PROG_SCHED_WAKEUP: &str = "sched_wakeup";
pub const PROG_SCHED_WAKEUP_NEW: &str = "sched_wakeup_new";
pub const PROG_SCHED_SWITCH: &str = "sched_switch";
pub const PROG_SCHED_EXIT: &str = "sched_process_exit";
pub const PROG_SCHED_EXEC: &str = "sched_process_exec";

/// Load-time globals (`EbpfLoader::override_global`).
pub const GLOBAL_TASK_PID_OFF: &str = "TASK_PID_OFF";
pub const GLOBAL_TASK_TGID_OFF: &str = "TASK_TGID_OFF";

/// Every program together with the kernel hook it is meant for, for listing and stats.
pub const UPROBE_PROGRAMS: [&str; 7] = [
    PROG_CASGSTATUS,
    PROG_CALIB_NOOP,
    PROG_GC_CLOCK,
    PROG_STW_STOP_ENTRY,
    PROG_STW_START_ENTRY,
    PROG_STW_START_RET,
    PROG_GC_MARK_TERM_ENTRY,
];
pub const TRACEPOINT_PROGRAMS: [&str; 5] = [
    PROG_SCHED_WAKEUP,
    PROG_SCHED_WAKEUP_NEW,
    PROG_SCHED_SWITCH,
    PROG_SCHED_EXIT,
    PROG_SCHED_EXEC,
];
