//! Builds the Go workloads in `tests/workloads/` with every installed Go toolchain, and runs
//! `go tool nm` / `go tool objdump` on the results so tests can compare against Go's own view.
//!
//! Outputs go to `<target>/go-workloads/<go-version>/<goarch>-<variant>/<workload>` (where
//! `<target>` is `$CARGO_TARGET_DIR` or `<workspace>/target`), with `GOCACHE`/`GOPATH` under
//! `<target>/go-cache`, `GOTOOLCHAIN=local`, `GOPROXY=off` and `GOENV=off`: workloads use the
//! standard library only and builds never touch the network. A build is skipped when the output
//! is newer than every file of the workload and than the `go` binary itself. Concurrent callers
//! (parallel tests, several test binaries) are safe: each build writes a unique temporary file
//! and renames it into place.

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use anyhow::{Context as _, Result, bail, ensure};

/// One installed Go toolchain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoToolchain {
    /// Path of the `go` command.
    pub go: PathBuf,
    /// Version as printed by `go version`, e.g. `go1.22.12`.
    pub version: String,
}

impl GoToolchain {
    /// Inspects the `go` command at `go` (runs `go version`).
    pub fn at(go: &Path) -> Result<Self> {
        let out = Command::new(go)
            .arg("version")
            .env("GOTOOLCHAIN", "local")
            .env("GOENV", "off")
            .output()
            .with_context(|| format!("failed to run {} version", go.display()))?;
        ensure!(out.status.success(), "{} version failed: {:?}", go.display(), out);
        let text = String::from_utf8_lossy(&out.stdout);
        // "go version go1.22.12 linux/amd64"
        let version = text
            .split_whitespace()
            .nth(2)
            .with_context(|| format!("unexpected `go version` output {text:?}"))?
            .to_owned();
        Ok(Self { go: go.to_owned(), version })
    }

    /// `(major, minor, patch)` parsed from [`Self::version`] (`go1.20` is `(1, 20, 0)`;
    /// anything unparsable sorts first as `(0, 0, 0)`).
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        parse_go_version(&self.version).unwrap_or((0, 0, 0))
    }
}

impl fmt::Display for GoToolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.version)
    }
}

fn parse_go_version(v: &str) -> Option<(u32, u32, u32)> {
    let rest = v.strip_prefix("go")?;
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let mut it = rest[..end].split('.').map(|s| s.parse::<u32>().ok());
    Some((it.next()??, it.next().flatten().unwrap_or(0), it.next().flatten().unwrap_or(0)))
}

/// All Go toolchains found at `/usr/lib/go-1.*/bin/go` and `/usr/lib/go/bin/go`, plus the
/// `go` commands listed in `$GOLAT_TEST_GO` (colon-separated paths), deduplicated by
/// `go version`, oldest first.
pub fn installed_go() -> Vec<GoToolchain> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(extra) = std::env::var_os("GOLAT_TEST_GO") {
        candidates.extend(std::env::split_paths(&extra));
    }
    if let Ok(dir) = std::fs::read_dir("/usr/lib") {
        let mut found: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("go-1."))
            .map(|e| e.path().join("bin/go"))
            .collect();
        found.sort();
        candidates.extend(found);
    }
    candidates.push(PathBuf::from("/usr/lib/go/bin/go"));
    let mut out: Vec<GoToolchain> = Vec::new();
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        if let Ok(t) = GoToolchain::at(&c) {
            if !out.iter().any(|o| o.version == t.version) {
                out.push(t);
            }
        }
    }
    out.sort_by_key(|t| t.version_tuple());
    out
}

/// Target architecture of a build (`GOARCH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GoArch {
    Amd64,
    Arm64,
}

impl GoArch {
    pub const ALL: [GoArch; 2] = [GoArch::Amd64, GoArch::Arm64];

    /// The `GOARCH` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GoArch::Amd64 => "amd64",
            GoArch::Arm64 => "arm64",
        }
    }

    /// The architecture of the machine running the tests, if it is one of ours.
    pub fn host() -> Option<GoArch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(GoArch::Amd64),
            "aarch64" => Some(GoArch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for GoArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a workload is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// `CGO_ENABLED=0 go build`: static, internal linking, symbols and DWARF.
    Default,
    /// `CGO_ENABLED=0 go build -ldflags='-s -w'`: no `.symtab`, no DWARF.
    Stripped,
    /// `CGO_ENABLED=0 go build -buildmode=pie`: internal-link PIE.
    Pie,
    /// `CGO_ENABLED=0 go build -buildmode=pie -ldflags='-s -w'`.
    PieStripped,
    /// `CGO_ENABLED=1 go build -buildmode=pie`: external linking through `cc` (C code first in
    /// `.text`, pclntab inside `.data.rel.ro`). Needs a C compiler for the target.
    CgoPie,
    /// `CGO_ENABLED=1 go build -buildmode=pie -ldflags='-s -w'`.
    CgoPieStripped,
    /// `CGO_ENABLED=0 go build -pgo=PROFILE` (Go 1.21+, host architecture only): PROFILE is a
    /// CPU profile written by running the [`Variant::Default`] build with
    /// `-cpuprofile PROFILE`, so the workload must accept that flag. PGO can inline runtime
    /// functions that are never inlined otherwise.
    Pgo,
}

impl Variant {
    pub const ALL: [Variant; 7] = [
        Variant::Default,
        Variant::Stripped,
        Variant::Pie,
        Variant::PieStripped,
        Variant::CgoPie,
        Variant::CgoPieStripped,
        Variant::Pgo,
    ];

    /// Directory-name form, e.g. `cgo-pie-stripped`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Stripped => "stripped",
            Variant::Pie => "pie",
            Variant::PieStripped => "pie-stripped",
            Variant::CgoPie => "cgo-pie",
            Variant::CgoPieStripped => "cgo-pie-stripped",
            Variant::Pgo => "pgo",
        }
    }

    pub fn is_stripped(self) -> bool {
        matches!(self, Variant::Stripped | Variant::PieStripped | Variant::CgoPieStripped)
    }

    pub fn is_pie(self) -> bool {
        matches!(
            self,
            Variant::Pie | Variant::PieStripped | Variant::CgoPie | Variant::CgoPieStripped
        )
    }

    pub fn is_cgo(self) -> bool {
        matches!(self, Variant::CgoPie | Variant::CgoPieStripped)
    }

    /// The same build without `-s -w` (itself when not stripped): its `.symtab` and DWARF are
    /// the reference for a stripped build, whose code is byte-for-byte the same.
    pub fn unstripped_twin(self) -> Variant {
        match self {
            Variant::Stripped => Variant::Default,
            Variant::PieStripped => Variant::Pie,
            Variant::CgoPieStripped => Variant::CgoPie,
            v => v,
        }
    }

    /// `go build` arguments (after `build`).
    /// `go build` arguments (after `build`); `profile` is the PGO profile for [`Variant::Pgo`].
    fn build_args(self, profile: Option<&Path>) -> Vec<String> {
        // No VCS stamping: outputs must not depend on the state of the git checkout.
        let mut args = vec!["-buildvcs=false".to_owned()];
        if self.is_pie() {
            args.push("-buildmode=pie".into());
        }
        if self.is_stripped() {
            args.push("-ldflags=-s -w".into());
        }
        if let Some(p) = profile {
            args.push(format!("-pgo={}", p.display()));
        }
        args
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The C compiler a cgo build for `arch` would use, if one is installed: `cc` for the host
/// architecture, `<triple>-gcc` for the other one.
pub fn c_compiler(arch: GoArch) -> Option<PathBuf> {
    let name = if Some(arch) == GoArch::host() {
        "cc"
    } else {
        match arch {
            GoArch::Amd64 => "x86_64-linux-gnu-gcc",
            GoArch::Arm64 => "aarch64-linux-gnu-gcc",
        }
    };
    find_in_path(name)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// `Err(reason)` when `variant` cannot be built for `arch` on this machine (a cgo variant with
/// no C compiler for that architecture, PGO for a foreign architecture); tests print the
/// reason and skip. See [`can_build_with`] for checks that depend on the toolchain.
pub fn can_build(variant: Variant, arch: GoArch) -> Result<(), String> {
    if variant.is_cgo() && c_compiler(arch).is_none() {
        return Err(format!("no C compiler for {arch} (needed by {variant})"));
    }
    if variant == Variant::Pgo && Some(arch) != GoArch::host() {
        return Err(format!("{variant} needs to run the workload, so only the host architecture"));
    }
    Ok(())
}

/// [`can_build`] plus what `go` supports (`-pgo` needs Go 1.21).
pub fn can_build_with(go: &GoToolchain, variant: Variant, arch: GoArch) -> Result<(), String> {
    can_build(variant, arch)?;
    if variant == Variant::Pgo && go.version_tuple() < (1, 21, 0) {
        return Err(format!("{variant} needs Go 1.21+, not {go}"));
    }
    Ok(())
}

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() { d } else { workspace_root().join(d) }
        }
        None => workspace_root().join("target"),
    }
}

/// Directory of the named workload, e.g. `workload_dir("inspect")`.
pub fn workload_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workloads").join(name)
}

/// Where [`build`] puts its output.
pub fn output_path(workload_dir: &Path, go: &GoToolchain, variant: Variant, arch: GoArch) -> PathBuf {
    let name = workload_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "workload".into());
    target_dir()
        .join("go-workloads")
        .join(&go.version)
        .join(format!("{}-{}", arch.as_str(), variant.name()))
        .join(name)
}

fn newest_mtime(dir: &Path, newest: &mut SystemTime) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            newest_mtime(&entry.path(), newest)?;
        } else if let Ok(m) = meta.modified() {
            *newest = (*newest).max(m);
        }
    }
    Ok(())
}

fn build_locks() -> &'static Mutex<HashMap<PathBuf, std::sync::Arc<Mutex<()>>>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, std::sync::Arc<Mutex<()>>>>> = OnceLock::new();
    LOCKS.get_or_init(Default::default)
}

/// Builds the Go package in `workload_dir` with `go` for `linux/<arch>` as `variant`, unless an
/// up-to-date output exists, and returns the binary's path (see [`output_path`]).
pub fn build(workload_dir: &Path, go: &GoToolchain, variant: Variant, arch: GoArch) -> Result<PathBuf> {
    if let Err(why) = can_build_with(go, variant, arch) {
        bail!("cannot build {variant} for {arch}: {why}");
    }
    let profile = if variant == Variant::Pgo { Some(pgo_profile(workload_dir, go, arch)?) } else { None };
    let out = output_path(workload_dir, go, variant, arch);
    // One build per output at a time within this process.
    let lock = {
        let mut locks = build_locks().lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(out.clone()).or_default().clone()
    };
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());

    let mut newest = SystemTime::UNIX_EPOCH;
    newest_mtime(workload_dir, &mut newest)?;
    if let Ok(m) = std::fs::metadata(&go.go).and_then(|m| m.modified()) {
        newest = newest.max(m);
    }
    if let Some(m) = profile.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()) {
        newest = newest.max(m);
    }
    // The recipe (go command, arguments, environment) is stored next to the output; a
    // different recipe forces a rebuild even when the sources did not change.
    let recipe_path = out.with_extension("recipe");
    let recipe = format!(
        "go={}\nversion={}\nargs={:?}\narch={}\ncgo={}\ncc={:?}\n",
        go.go.display(),
        go.version,
        variant.build_args(profile.as_deref()),
        arch.as_str(),
        variant.is_cgo(),
        if variant.is_cgo() { c_compiler(arch) } else { None },
    );
    if let Ok(m) = std::fs::metadata(&out).and_then(|m| m.modified()) {
        let same_recipe = std::fs::read_to_string(&recipe_path).is_ok_and(|r| r == recipe);
        if m > newest && same_recipe {
            return Ok(out);
        }
    }

    let dir = out.parent().context("output path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let cache = target_dir().join("go-cache");
    let mut cmd = Command::new(&go.go);
    cmd.current_dir(workload_dir)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .args(variant.build_args(profile.as_deref()))
        .arg(".")
        .env("GOCACHE", cache.join("build"))
        .env("GOPATH", cache.join("gopath"))
        .env("GOMODCACHE", cache.join("gopath/pkg/mod"))
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOFLAGS", "")
        .env("GOOS", "linux")
        .env("GOARCH", arch.as_str())
        .env("CGO_ENABLED", if variant.is_cgo() { "1" } else { "0" })
        .env_remove("GOROOT");
    if variant.is_cgo() {
        if let Some(cc) = c_compiler(arch) {
            cmd.env("CC", cc);
        }
    }
    let res = cmd.output().with_context(|| format!("failed to run {cmd:?}"))?;
    if !res.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            res.status,
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        );
    }
    std::fs::rename(&tmp, &out)
        .with_context(|| format!("failed to rename {} to {}", tmp.display(), out.display()))?;
    std::fs::write(&recipe_path, recipe).with_context(|| format!("failed to write {}", recipe_path.display()))?;
    Ok(out)
}

/// The CPU profile a [`Variant::Pgo`] build uses: written next to the PGO output by running
/// the default build with `-cpuprofile FILE -rounds 300`, and rewritten when that build is
/// newer than the profile.
fn pgo_profile(workload_dir: &Path, go: &GoToolchain, arch: GoArch) -> Result<PathBuf> {
    let default = build(workload_dir, go, Variant::Default, arch)?;
    let out = output_path(workload_dir, go, Variant::Pgo, arch);
    let profile = out.with_extension("pprof");
    let fresh = |p: &Path| {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((m(p), m(&default)), (Some(a), Some(b)) if a > b)
    };
    if fresh(&profile) {
        return Ok(profile);
    }
    let dir = profile.parent().context("profile path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let tmp = profile.with_extension(format!("pprof.tmp-{}", std::process::id()));
    let mut cmd = Command::new(&default);
    cmd.arg("-cpuprofile").arg(&tmp).args(["-rounds", "300"]);
    output_ok(&mut cmd)?;
    std::fs::rename(&tmp, &profile)
        .with_context(|| format!("failed to rename {} to {}", tmp.display(), profile.display()))?;
    Ok(profile)
}

/// One line of `go tool nm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NmSymbol {
    /// `None` for undefined (`U`) symbols.
    pub address: Option<u64>,
    /// Go's symbol kind letter: `T`/`t` text, `D`/`d` data, `R`/`r` read-only, `B`/`b` bss, `U`.
    pub kind: char,
    pub name: String,
}

/// Runs `go tool nm` on `binary` and parses its output.
pub fn go_nm(go: &GoToolchain, binary: &Path) -> Result<Vec<NmSymbol>> {
    let text = run_go_tool(go, &["tool", "nm"], binary, &[])?;
    let mut out = Vec::new();
    for line in text.lines() {
        // Fixed layout: "%8x %c %s" with the address right-aligned in 8+ columns, blank for U.
        let trimmed = line.trim_start();
        let (addr, rest) = match trimmed.split_once(' ') {
            Some((a, r)) if a.len() > 1 && a.chars().all(|c| c.is_ascii_hexdigit()) => {
                (Some(u64::from_str_radix(a, 16)?), r)
            }
            _ => (None, trimmed),
        };
        let mut chars = rest.chars();
        let kind = chars.next().with_context(|| format!("bad nm line {line:?}"))?;
        let name = chars.as_str().strip_prefix(' ').unwrap_or(chars.as_str()).to_owned();
        out.push(NmSymbol { address: addr, kind, name });
    }
    Ok(out)
}

/// One instruction of `go tool objdump`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjdumpInsn {
    /// The function (`TEXT name(SB)`) the instruction belongs to.
    pub function: String,
    pub address: u64,
    /// The instruction's bytes in file order (arm64 words, which objdump prints as
    /// big-endian hex, are converted to little-endian byte order).
    pub bytes: Vec<u8>,
    /// Go assembler text, e.g. `RET` or `CMPQ SP, 0x10(R14)`.
    pub text: String,
}

impl ObjdumpInsn {
    /// Whether this is a return instruction (`RET`, with or without operands).
    pub fn is_ret(&self) -> bool {
        self.text == "RET" || self.text.starts_with("RET ")
    }
}

/// Runs `go tool objdump -s <regex>` on `binary` and parses its output. `arch` tells how
/// instruction bytes are printed.
pub fn go_objdump(go: &GoToolchain, binary: &Path, regex: &str, arch: GoArch) -> Result<Vec<ObjdumpInsn>> {
    let text = run_go_tool(go, &["tool", "objdump", "-s", regex], binary, &[])?;
    let mut out = Vec::new();
    let mut function = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("TEXT ") {
            function = rest.split("(SB)").next().unwrap_or(rest).to_owned();
            continue;
        }
        let fields: Vec<&str> = line.split('\t').map(str::trim).filter(|f| !f.is_empty()).collect();
        let Some(pos) = fields.iter().position(|f| f.starts_with("0x")) else { continue };
        if fields.len() < pos + 3 {
            continue;
        }
        let address = u64::from_str_radix(&fields[pos][2..], 16)?;
        let hex = fields[pos + 1];
        ensure!(hex.len().is_multiple_of(2), "odd hex {hex:?} in {line:?}");
        let mut bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .with_context(|| format!("bad hex in {line:?}"))?;
        if arch == GoArch::Arm64 && bytes.len() == 4 {
            bytes.reverse();
        }
        out.push(ObjdumpInsn { function: function.clone(), address, bytes, text: fields[pos + 2..].join(" ") });
    }
    Ok(out)
}

fn run_go_tool(go: &GoToolchain, args: &[&str], binary: &Path, env: &[(&str, &str)]) -> Result<String> {
    let mut cmd = Command::new(&go.go);
    cmd.args(args).arg(binary).env("GOTOOLCHAIN", "local").env("GOENV", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let res = output_ok(&mut cmd)?;
    String::from_utf8(res.stdout).with_context(|| format!("{cmd:?} printed non-UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing() {
        assert_eq!(parse_go_version("go1.22.12"), Some((1, 22, 12)));
        assert_eq!(parse_go_version("go1.20"), Some((1, 20, 0)));
        assert_eq!(parse_go_version("go1.21rc2"), Some((1, 21, 0)));
        assert_eq!(parse_go_version("devel"), None);
    }
}

/// Runs `cmd` and returns its output, or an error with the command, status and stderr.
fn output_ok(cmd: &mut Command) -> Result<std::process::Output> {
    let res = cmd.output().with_context(|| format!("failed to run {cmd:?}"))?;
    ensure!(res.status.success(), "{cmd:?} failed ({}): {}", res.status, String::from_utf8_lossy(&res.stderr));
    Ok(res)
}
