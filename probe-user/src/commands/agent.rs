//! `golat agent`: the node agent (see `crate::agent`).

pub use crate::agent::config::AgentArgs;

pub async fn run(args: AgentArgs, cancel: tokio_util::sync::CancellationToken) -> anyhow::Result<i32> {
    let cfg = crate::agent::config::Config::resolve(args)?;
    crate::agent::run(cfg, cancel).await
}
