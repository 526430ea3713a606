use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

use crate::util::{cargo, run as run_cmd, workspace_root};

/// The Rust target of the arm64 cross-build (linker set in `.cargo/config.toml`).
pub const ARM64_TARGET: &str = "aarch64-unknown-linux-gnu";

#[derive(Debug, Default, clap::Args)]
pub struct BuildArgs {
    /// Cross-build for arm64 (`aarch64-unknown-linux-gnu`) instead of the host, and check the
    /// result: an AArch64 ELF whose embedded eBPF object was built for arm64 registers.
    #[arg(long)]
    pub arm64: bool,
}

pub fn run(args: &BuildArgs) -> anyhow::Result<()> {
    crate::setup::run(&crate::setup::SetupArgs::default())?;
    let path = if args.arm64 { golat_arm64()? } else { golat()? };
    println!("{}", path.display());
    Ok(())
}

/// Builds the `golat` binary (and, through probe-user/build.rs, the eBPF programs).
pub fn golat() -> anyhow::Result<PathBuf> {
    crate::setup::ensure_tool_path();
    run_cmd(cargo().current_dir(workspace_root()).args(["build", "--release", "--package", "probe-user", "--bin", "golat"]))?;
    Ok(workspace_root().join("target/release/golat"))
}

/// Cross-builds `golat` for arm64 and checks it (see [`check_arm64`]). aya-build compiles the
/// eBPF object with `bpf_target_arch` taken from the build script's target, so the object
/// embedded in this binary reads arm64 registers (`user_pt_regs`).
pub fn golat_arm64() -> anyhow::Result<PathBuf> {
    crate::setup::ensure_tool_path();
    run_cmd(cargo().current_dir(workspace_root()).args([
        "build",
        "--release",
        "--package",
        "probe-user",
        "--bin",
        "golat",
        "--target",
        ARM64_TARGET,
    ]))
    .with_context(|| format!("cross-building golat for {ARM64_TARGET} failed (run `cargo xtask setup` for the arm64 linker and Rust target)"))?;
    let path = workspace_root().join("target").join(ARM64_TARGET).join("release/golat");
    check_arm64(&path)?;
    Ok(path)
}

const EM_AARCH64: u16 = 183;
const EM_BPF: u16 = 247;

/// `e_machine` of a 64-bit little-endian ELF image starting at `bytes`.
fn elf64_machine(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 20 && bytes.starts_with(b"\x7fELF\x02\x01")).then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

/// Checks that `golat` is an AArch64 executable and that the eBPF object embedded in it (an
/// `EM_BPF` ELF image inside its data) is the arm64 build: the uprobe programs' context type in
/// its BTF is `user_pt_regs` (arm64), not `pt_regs` (x86-64, whose fields are `rax`, `rip`...).
pub fn check_arm64(golat: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(golat).with_context(|| format!("cannot read {}", golat.display()))?;
    ensure!(elf64_machine(&bytes) == Some(EM_AARCH64), "{} is not an AArch64 ELF executable", golat.display());
    let objects: Vec<&[u8]> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"\x7fELF")
        .map(|(i, _)| &bytes[i..])
        .filter(|b| elf64_machine(b) == Some(EM_BPF))
        .collect();
    let [object] = objects[..] else {
        bail!("{}: expected one embedded eBPF object, found {}", golat.display(), objects.len());
    };
    // The object's section header table ends the image: e_shoff + e_shnum * e_shentsize.
    let u64_at = |o: usize| u64::from_le_bytes(object[o..o + 8].try_into().expect("8 bytes"));
    let u16_at = |o: usize| u16::from_le_bytes([object[o], object[o + 1]]);
    let len = usize::try_from(u64_at(0x28))? + usize::from(u16_at(0x3c)) * usize::from(u16_at(0x3a));
    ensure!(len <= object.len(), "{}: truncated embedded eBPF object", golat.display());
    let object = &object[..len];
    let has = |s: &[u8]| object.windows(s.len()).any(|w| w == s);
    ensure!(
        has(b"\0user_pt_regs\0"),
        "{}: the embedded eBPF object has no `user_pt_regs` in its BTF: it was not built with bpf_target_arch=\"aarch64\"",
        golat.display()
    );
    ensure!(
        !has(b"\0rax\0") && !has(b"\0rip\0"),
        "{}: the embedded eBPF object contains x86-64 register fields (rax, rip): wrong bpf_target_arch",
        golat.display()
    );
    eprintln!("xtask: {} is AArch64 and embeds an arm64 eBPF object ({len} bytes, user_pt_regs)", golat.display());
    Ok(())
}
