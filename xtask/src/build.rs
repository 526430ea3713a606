use std::path::PathBuf;

use crate::util::{cargo, run as run_cmd, workspace_root};

/// Builds the `golat` binary (and, through probe-user/build.rs, the eBPF programs).
pub fn golat() -> anyhow::Result<PathBuf> {
    crate::setup::ensure_tool_path();
    run_cmd(cargo().current_dir(workspace_root()).args(["build", "--release", "--package", "probe-user", "--bin", "golat"]))?;
    Ok(workspace_root().join("target/release/golat"))
}
