//! Agent configuration: a TOML file with the same keys as the flags; flags win.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::{
    commands::record::{Duty, parse_duration, parse_duty},
    watch::GoroutineSource,
};

/// What can be set in the config file (every key optional; unknown keys are errors).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<String>,
    pub interval: Option<String>,
    pub rescan_interval: Option<String>,
    pub goroutine_source: Option<String>,
    pub precise_duty: Option<String>,
    pub exemplar_threshold: Option<String>,
    pub include_comm: Option<Vec<String>>,
    pub exclude_comm: Option<Vec<String>>,
    pub include_exe: Option<Vec<String>>,
    pub exclude_exe: Option<Vec<String>>,
    pub include_cgroup: Option<Vec<String>>,
    pub exclude_cgroup: Option<Vec<String>>,
    pub include_go_version: Option<Vec<String>>,
    pub max_processes: Option<usize>,
    pub stream: Option<String>,
    pub policy: Option<String>,
}

/// Run the node agent: watch every Go process, serve Prometheus metrics and a JSON API.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// TOML file with the same options as these flags (flags win). See docs/deploy.md.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address of the HTTP server (/metrics, /v1/processes, /healthz). Default 127.0.0.1:9464.
    #[arg(long)]
    pub listen: Option<String>,
    /// How often to read the kernel maps and update metrics. Default 10s.
    #[arg(long)]
    pub interval: Option<String>,
    /// How often to rescan /proc for Go processes exec events might have missed. Default 30s.
    #[arg(long)]
    pub rescan_interval: Option<String>,
    /// Goroutine latency source: runtime (default), precise, both, off.
    #[arg(long)]
    pub goroutine_source: Option<String>,
    /// Duty cycle of the precise source, ON/PERIOD or always. Default 1s/10s.
    #[arg(long)]
    pub precise_duty: Option<String>,
    /// Goroutine waits at least this long become exemplars. Default 1ms.
    #[arg(long)]
    pub exemplar_threshold: Option<String>,
    /// Watch only processes whose comm matches one of these regexes.
    #[arg(long)]
    pub include_comm: Vec<String>,
    /// Never watch processes whose comm matches one of these regexes.
    #[arg(long)]
    pub exclude_comm: Vec<String>,
    /// Watch only binaries whose path matches one of these regexes.
    #[arg(long)]
    pub include_exe: Vec<String>,
    /// Never watch binaries whose path matches one of these regexes.
    #[arg(long)]
    pub exclude_exe: Vec<String>,
    /// Watch only processes whose cgroup path matches one of these regexes.
    #[arg(long)]
    pub include_cgroup: Vec<String>,
    /// Never watch processes whose cgroup path matches one of these regexes.
    #[arg(long)]
    pub exclude_cgroup: Vec<String>,
    /// Watch only binaries whose Go version starts with one of these (e.g. go1.22).
    #[arg(long)]
    pub include_go_version: Vec<String>,
    /// At most this many processes are watched; others are skipped with reason `limit`. Default 256.
    #[arg(long)]
    pub max_processes: Option<usize>,
    /// Also write interval and signal records as JSON lines to this file (`-` for stdout).
    #[arg(long)]
    pub stream: Option<String>,
    /// GOMAXPROCS policy: default or seed (docs/signals.md).
    #[arg(long)]
    pub policy: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub interval: Duration,
    pub rescan_interval: Duration,
    pub goroutine_source: GoroutineSource,
    pub precise_duty: Duty,
    pub exemplar_threshold: Duration,
    pub filters: super::select::Filters,
    pub max_processes: usize,
    pub stream: Option<String>,
    pub policy: crate::signals::policy::Policy,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn pick<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
    flag.or(file)
}

fn list(flag: Vec<String>, file: Option<Vec<String>>) -> Vec<String> {
    if flag.is_empty() { file.unwrap_or_default() } else { flag }
}

impl Config {
    pub fn resolve(args: AgentArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let p = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse { path: p, message: e.message().to_owned() })?
            }
            None => FileConfig::default(),
        };
        let invalid = |key: &'static str| move |message: String| ConfigError::Invalid { key, message };
        let listen = pick(args.listen, file.listen).unwrap_or_else(|| "127.0.0.1:9464".into());
        let listen: SocketAddr = listen.parse().map_err(|e: std::net::AddrParseError| invalid("listen")(format!("{listen:?}: {e}")))?;
        let interval = parse_duration(&pick(args.interval, file.interval).unwrap_or_else(|| "10s".into())).map_err(invalid("interval"))?;
        let rescan_interval =
            parse_duration(&pick(args.rescan_interval, file.rescan_interval).unwrap_or_else(|| "30s".into())).map_err(invalid("rescan-interval"))?;
        let source = pick(args.goroutine_source, file.goroutine_source).unwrap_or_else(|| "runtime".into());
        let goroutine_source = <GoroutineSource as clap::ValueEnum>::from_str(&source, true)
            .map_err(|_| invalid("goroutine-source")(format!("{source:?} (use runtime, precise, both or off)")))?;
        let precise_duty = parse_duty(&pick(args.precise_duty, file.precise_duty).unwrap_or_else(|| "1s/10s".into())).map_err(invalid("precise-duty"))?;
        let exemplar_threshold =
            parse_duration(&pick(args.exemplar_threshold, file.exemplar_threshold).unwrap_or_else(|| "1ms".into())).map_err(invalid("exemplar-threshold"))?;
        let filters = super::select::Filters::new(
            [
                ("include-comm", list(args.include_comm, file.include_comm)),
                ("exclude-comm", list(args.exclude_comm, file.exclude_comm)),
                ("include-exe", list(args.include_exe, file.include_exe)),
                ("exclude-exe", list(args.exclude_exe, file.exclude_exe)),
                ("include-cgroup", list(args.include_cgroup, file.include_cgroup)),
                ("exclude-cgroup", list(args.exclude_cgroup, file.exclude_cgroup)),
            ],
            list(args.include_go_version, file.include_go_version),
        )
        .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        let max_processes = pick(args.max_processes, file.max_processes).unwrap_or(256);
        if max_processes == 0 || max_processes > 4096 {
            return Err(invalid("max-processes")(format!("{max_processes} (1 to 4096)")));
        }
        let policy = pick(args.policy, file.policy).unwrap_or_else(|| "default".into());
        let policy = <crate::signals::policy::Policy as clap::ValueEnum>::from_str(&policy, true)
            .map_err(|_| invalid("policy")(format!("{policy:?} (use default or seed)")))?;
        Ok(Config {
            policy,
            listen,
            interval,
            rescan_interval,
            goroutine_source,
            precise_duty,
            exemplar_threshold,
            filters,
            max_processes,
            stream: pick(args.stream, file.stream),
        })
    }
}
