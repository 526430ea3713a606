//! Idempotent machine setup. Each step checks first and only acts when something is missing;
//! a step that cannot be done says in one line how to do it by hand.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, bail};

use crate::util::{cargo, output, run as run_cmd};

#[derive(Debug, Default, clap::Args)]
pub struct SetupArgs {
    /// Only check; install nothing.
    #[arg(long)]
    pub check: bool,
}

/// Debian packages: LLVM 22 for bpf-linker, the Go toolchains the tests build workloads with,
/// and the arm64 cross C toolchain (linker of the arm64 `golat`, C compiler of the arm64 cgo
/// test workloads).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "golang-go",
    "golang-1.21-go",
    "golang-1.22-go",
    "golang-1.23-go",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    // promtool, to check the agent's /metrics in the tests.
    "prometheus",
];
/// Rust targets the stable toolchain needs besides the host's: the arm64 cross-build.
pub const RUST_TARGETS: &[&str] = &["aarch64-unknown-linux-gnu"];
const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/golat-bookworm-backports.sources";
const BACKPORTS_SOURCE: &str = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13.0";
const TRACEFS: &str = "/sys/kernel/tracing";

fn home_cargo_bin() -> Option<std::path::PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|p| p.join("bin"))
}

/// Puts `~/.cargo/bin` (bpf-linker) on PATH for the commands xtask starts.
pub fn ensure_tool_path() {
    let Some(bin) = home_cargo_bin() else { return };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|p| p == bin) {
        return;
    }
    let joined = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path))).expect("valid PATH");
    // SAFETY: xtask is single-threaded when it changes its environment.
    unsafe { std::env::set_var("PATH", joined) };
}

fn dpkg_installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg])).is_some_and(|s| s.contains("install ok installed"))
}

fn apt_packages(check: bool) -> anyhow::Result<()> {
    let missing: Vec<&str> = APT_PACKAGES.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if check {
        bail!("missing Debian packages: {} (run `cargo xtask setup`)", missing.join(" "));
    }
    apt_install(&missing, None)
}

/// Installs Debian packages (no recommends), from `release` (e.g. `bookworm-backports`) when
/// given; makes sure bookworm-backports is an apt source first (LLVM 22 and QEMU come from it).
pub fn apt_install(packages: &[&str], release: Option<&str>) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let has_backports = fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| {
            d.flatten().any(|e| fs::read_to_string(e.path()).is_ok_and(|s| s.contains("bookworm-backports") && !s.trim_start().starts_with('#')))
        })
        .unwrap_or(false)
        || fs::read_to_string("/etc/apt/sources.list").is_ok_and(|s| s.contains("bookworm-backports"));
    if !has_backports {
        fs::write(BACKPORTS_FILE, BACKPORTS_SOURCE)
            .with_context(|| format!("cannot write {BACKPORTS_FILE} (run as root, or add bookworm-backports to apt sources yourself)"))?;
    }
    run_cmd(Command::new("apt-get").args(["update", "-q"]))
        .context("apt-get update failed (run as root with access to Debian's mirrors)")?;
    let mut install = Command::new("apt-get");
    install.env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "-q", "--no-install-recommends"]);
    if let Some(release) = release {
        install.args(["-t", release]);
    }
    run_cmd(install.args(&missing)).with_context(|| format!("apt-get install {} failed", missing.join(" ")))?;
    if missing.contains(&"prometheus") {
        // Only promtool is wanted; the package also starts a Prometheus server.
        let _ = Command::new("systemctl").args(["disable", "--now", "prometheus"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status();
    }
    Ok(())
}

fn rust_toolchains(check: bool) -> anyhow::Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).context("rustup not found: install Rust with rustup")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        if check {
            bail!("no nightly Rust toolchain (run `rustup toolchain install nightly --component rust-src`)");
        }
        run_cmd(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal", "--component", "rust-src"]))?;
    }
    let components = output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", "nightly"])).unwrap_or_default();
    if !components.lines().any(|l| l.starts_with("rust-src")) {
        if check {
            bail!("nightly lacks rust-src (run `rustup component add rust-src --toolchain nightly`)");
        }
        run_cmd(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    // Targets of the toolchain that builds userspace (the one running this xtask; rustup
    // resolves it from the workspace's directory like cargo does).
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    let missing: Vec<&str> = RUST_TARGETS.iter().copied().filter(|t| !installed.lines().any(|l| l.trim() == *t)).collect();
    if !missing.is_empty() {
        if check {
            bail!("missing Rust targets: {} (run `rustup target add {}`)", missing.join(" "), missing.join(" "));
        }
        run_cmd(Command::new("rustup").arg("target").arg("add").args(&missing))
            .with_context(|| format!("run `rustup target add {}` (needs network access to static.rust-lang.org)", missing.join(" ")))?;
    }
    Ok(())
}

fn bpf_linker(check: bool) -> anyhow::Result<()> {
    ensure_tool_path();
    let have = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if have.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    if check {
        bail!("bpf-linker {BPF_LINKER_VERSION} not found (run `cargo xtask setup`)");
    }
    let path = format!("{LLVM_PREFIX}/bin:{}", std::env::var("PATH").unwrap_or_default());
    run_cmd(cargo()
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("PATH", path)
        .args(["install", "--locked", "bpf-linker", "--version", BPF_LINKER_VERSION, "--no-default-features", "--features", "llvm-22"]))
    .context("installing bpf-linker failed (needs llvm-22-dev from Debian)")
}

fn tracefs(check: bool) -> anyhow::Result<()> {
    let mounted = fs::read_to_string("/proc/self/mounts").is_ok_and(|m| m.lines().any(|l| l.split_whitespace().nth(2) == Some("tracefs")));
    if mounted {
        return Ok(());
    }
    if check {
        bail!("tracefs not mounted (run `mount -t tracefs tracefs {TRACEFS}`)");
    }
    run_cmd(Command::new("mount").args(["-t", "tracefs", "tracefs", TRACEFS])).with_context(|| format!("run `mount -t tracefs tracefs {TRACEFS}` as root"))
}

fn kernel() -> anyhow::Result<()> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!("kernel BTF missing (/sys/kernel/btf/vmlinux): golat needs CONFIG_DEBUG_INFO_BTF=y");
    }
    if !Path::new("/sys/bus/event_source/devices/uprobe/type").exists() {
        bail!("the kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe): golat needs CONFIG_UPROBE_EVENTS=y");
    }
    Ok(())
}

pub fn run(args: &SetupArgs) -> anyhow::Result<()> {
    kernel()?;
    apt_packages(args.check)?;
    rust_toolchains(args.check)?;
    bpf_linker(args.check)?;
    tracefs(args.check)?;
    eprintln!("xtask: setup complete");
    Ok(())
}
