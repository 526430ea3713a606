//! `cargo xtask test --arm64-vm`: the arm64 `golat` on a real arm64 kernel, in an emulated
//! machine.
//!
//! Boots qemu-system-aarch64 (`-M virt -cpu max`, TCG) with Debian's arm64 kernel and an
//! initramfs built here: a static busybox (Debian `busybox-static:arm64`) as `/init`, the
//! cross-built `golat` with the arm64 glibc it links against (the loader and libraries of
//! Debian's `libc6-arm64-cross` / `libgcc-s1-arm64-cross`, installed by setup for the
//! cross-build), and `tests/workloads/gcstw` built with `GOARCH=arm64` by every installed Go in
//! the default, stripped, PIE and cgo-PIE-stripped variants. The init runs
//! `golat record --json -- /w/<workload> -cycles 5` for each, between marker lines, and powers
//! off; xtask reads the serial console and checks golat's numbers against the runtime's own, as
//! `tests/tests/stw.rs` does on the host.
//!
//! Everything comes from Debian: qemu-system-arm from bookworm-backports (installed on demand),
//! the arm64 .debs through a private apt state under `target/arm64-vm/apt` (arm64 package
//! lists only; the machine's own dpkg architectures and apt state are left alone). Downloads,
//! the unpacked kernel and busybox are cached under `target/arm64-vm/`.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use integration_tests::go_build::{self, GoArch, Variant};
use serde_json::Value;

use crate::util::{output, run as run_cmd};

/// The Debian suite the arm64 kernel comes from by default. bookworm's own 6.1 kernel does not
/// load golat's eBPF programs (see docs/architectures.md); bookworm-backports has 6.12.
pub const DEFAULT_SUITE: &str = "bookworm-backports";
/// Whole VM run, boot to power-off (qemu TCG on a shared 2-core machine is slow).
const HARD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// From qemu's start to the init's first line.
const BOOT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Per `golat record` run inside the VM (busybox `timeout`).
const RUN_TIMEOUT_S: u32 = 300;
const GC_CYCLES: u32 = 5;
const MARK: &str = "@@GOLAT-VM";
const CROSS_LIB_DIR: &str = "/usr/aarch64-linux-gnu/lib";
const READELF: &str = "aarch64-linux-gnu-readelf";
const QEMU: &str = "qemu-system-aarch64";
const VARIANTS: [Variant; 4] = [Variant::Default, Variant::Stripped, Variant::Pie, Variant::CgoPieStripped];

fn vm_dir() -> PathBuf {
    go_build::target_dir().join("arm64-vm")
}

/// Runs the arm64 VM test with the kernel of Debian `suite`.
pub fn run(suite: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    // Everything below (cargo, go, qemu) runs at nice 10: the machine is shared.
    let _ = Command::new("renice").args(["-n", "10", "-p", &std::process::id().to_string()]).stdout(Stdio::null()).status();
    let dir = vm_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    host_tools()?;
    let debs = ArmDebs::new(&dir);
    let kernel = debs.kernel(suite)?;
    let busybox = debs.busybox()?;
    let golat = crate::build::golat_arm64()?;
    let workloads = workloads()?;
    ensure!(!workloads.is_empty(), "arm64 VM: no Go toolchain can build arm64 workloads (run `cargo xtask setup`)");

    let initrd = dir.join("initramfs.cpio");
    build_initramfs(&initrd, &busybox, &golat, &workloads)?;
    let prepared = started.elapsed();
    eprintln!(
        "xtask: arm64 VM: kernel {}, initramfs {} ({} MB, {} workloads), prepared in {:.1}s",
        kernel.display(),
        initrd.display(),
        fs::metadata(&initrd).map(|m| m.len() >> 20).unwrap_or(0),
        workloads.len(),
        prepared.as_secs_f64()
    );

    let console = boot(&kernel, &initrd, &dir.join("console.log"))?;
    let failures = check(&console, &workloads);
    println!(
        "arm64 VM: kernel {} booted in {:.1}s (guest uptime {}s at init), {} runs in {:.1}s of VM time; total {:.1}s including setup and builds",
        console.kernel,
        console.boot_wall.as_secs_f64(),
        console.boot_uptime,
        workloads.len(),
        console.total_wall.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if let Some(first) = failures.first() {
        bail!("arm64 VM: {} of {} runs failed; first: {first}", failures.len(), workloads.len());
    }
    println!("arm64 VM: all {} runs match the Go runtime's own numbers", workloads.len());
    Ok(())
}

/// qemu-system-aarch64 (from bookworm-backports: bookworm's 7.2 conflicts with a backports
/// qemu-utils, and 10.x emulates faster) and the arm64 readelf of the cross toolchain.
fn host_tools() -> anyhow::Result<()> {
    if output(Command::new(QEMU).arg("--version")).is_none() {
        crate::setup::apt_install(&["qemu-system-arm"], Some("bookworm-backports"))
            .context("arm64 VM: installing qemu-system-arm failed")?;
    }
    ensure!(output(Command::new(QEMU).arg("--version")).is_some(), "arm64 VM: {QEMU} does not run after installing qemu-system-arm");
    ensure!(
        output(Command::new(READELF).arg("--version")).is_some() && Path::new(CROSS_LIB_DIR).join("libc.so.6").exists(),
        "arm64 VM: {READELF} or {CROSS_LIB_DIR}/libc.so.6 missing (run `cargo xtask setup`: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross)"
    );
    Ok(())
}

/// Debian arm64 packages fetched with a private apt state (arm64 lists only).
struct ArmDebs {
    dir: PathBuf,
    apt: PathBuf,
    debs: PathBuf,
    updated: std::cell::Cell<bool>,
}

impl ArmDebs {
    fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), apt: dir.join("apt"), debs: dir.join("debs"), updated: false.into() }
    }

    fn apt_opts(&self) -> Vec<String> {
        let a = self.apt.display();
        [
            format!("Dir::State::Lists={a}/lists"),
            format!("Dir::State::status={a}/status"),
            format!("Dir::Cache={a}/cache"),
            format!("Dir::Etc::SourceList={a}/sources.list"),
            format!("Dir::Etc::SourceParts={a}/sources.list.d"),
            format!("Dir::Etc::Preferences={a}/preferences"),
            format!("Dir::Etc::PreferencesParts={a}/preferences.d"),
            "APT::Architecture=arm64".into(),
            "APT::Architectures=arm64".into(),
            // Files are written by root into target/, which the _apt user may not reach.
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_owned(), o])
        .collect()
    }

    /// `apt-get update` of the private state, once per run.
    fn update(&self) -> anyhow::Result<()> {
        if self.updated.get() {
            return Ok(());
        }
        for d in ["lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"] {
            fs::create_dir_all(self.apt.join(d))?;
        }
        fs::write(self.apt.join("status"), "")?;
        let source = |suite: &str| {
            format!("deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {suite} main\n")
        };
        fs::write(self.apt.join("sources.list"), source("bookworm") + &source("bookworm-updates") + &source("bookworm-backports"))?;
        run_cmd(Command::new("apt-get").args(self.apt_opts()).args(["update", "-q"]))
            .context("arm64 VM: apt-get update of the arm64 package lists failed (needs deb.debian.org)")?;
        self.updated.set(true);
        Ok(())
    }

    /// The cached .deb of `package`, downloaded when missing.
    fn deb(&self, package: &str) -> anyhow::Result<PathBuf> {
        let find = || -> Option<PathBuf> {
            fs::read_dir(&self.debs).ok()?.flatten().map(|e| e.path()).find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with("_arm64.deb"))
            })
        };
        if let Some(p) = find() {
            return Ok(p);
        }
        self.update()?;
        fs::create_dir_all(&self.debs)?;
        run_cmd(Command::new("apt-get").current_dir(&self.debs).args(self.apt_opts()).args(["download", "-q", package]))
            .with_context(|| format!("arm64 VM: apt-get download {package} (arm64) failed"))?;
        find().with_context(|| format!("arm64 VM: apt-get download {package} left no .deb in {}", self.debs.display()))
    }

    /// Extracts `member` (a path such as `./bin/busybox`, wildcards allowed) of a .deb into `to`.
    fn extract(deb: &Path, member: &str, to: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(to)?;
        let mut dpkg = Command::new("dpkg-deb").arg("--fsys-tarfile").arg(deb).stdout(Stdio::piped()).spawn().context("cannot run dpkg-deb")?;
        let tar = Command::new("tar")
            .arg("-C")
            .arg(to)
            .args(["-x", "--wildcards", member])
            .stdin(dpkg.stdout.take().context("dpkg-deb stdout")?)
            .status()
            .context("cannot run tar")?;
        let dpkg = dpkg.wait()?;
        ensure!(dpkg.success() && tar.success(), "arm64 VM: cannot extract {member} from {}", deb.display());
        Ok(())
    }

    /// The arm64 kernel image of `suite` (linux-image-arm64's dependency there), cached.
    fn kernel(&self, suite: &str) -> anyhow::Result<PathBuf> {
        let name_file = self.dir.join(format!("kernel-{suite}.txt"));
        let package = match fs::read_to_string(&name_file) {
            Ok(p) if !p.trim().is_empty() => p.trim().to_owned(),
            _ => {
                self.update()?;
                let show = output(Command::new("apt-cache").args(self.apt_opts()).args(["show", "--no-all-versions", &format!("linux-image-arm64/{suite}")]))
                    .with_context(|| format!("arm64 VM: no linux-image-arm64 in Debian {suite} (arm64)"))?;
                let package = show
                    .lines()
                    .find_map(|l| l.strip_prefix("Depends:"))
                    .and_then(|d| d.split([',', ' ']).find(|w| w.starts_with("linux-image-")))
                    .with_context(|| format!("arm64 VM: cannot read the kernel package from linux-image-arm64/{suite}: {show}"))?
                    .to_owned();
                fs::write(&name_file, &package)?;
                package
            }
        };
        let version = package.strip_prefix("linux-image-").context("kernel package name")?;
        let image = self.dir.join("kernel").join(format!("boot/vmlinuz-{version}"));
        if !image.exists() {
            let deb = self.deb(&package)?;
            Self::extract(&deb, &format!("./boot/vmlinuz-{version}"), &self.dir.join("kernel"))?;
            ensure!(image.exists(), "arm64 VM: {} has no boot/vmlinuz-{version}", deb.display());
        }
        Ok(image)
    }

    /// The static arm64 busybox from busybox-static, cached.
    fn busybox(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.join("busybox/bin/busybox");
        if !path.exists() {
            let deb = self.deb("busybox-static")?;
            Self::extract(&deb, "./bin/busybox", &self.dir.join("busybox"))?;
        }
        Ok(path)
    }
}

/// One gcstw build to run in the VM.
struct Workload {
    /// File name under /w in the VM, e.g. `gcstw-go1.23.5-pie`.
    name: String,
    path: PathBuf,
}

/// gcstw for arm64, every installed Go that golat supports on arm64 (1.18+) × [`VARIANTS`].
fn workloads() -> anyhow::Result<Vec<Workload>> {
    let dir = go_build::workload_dir("gcstw");
    let mut out = Vec::new();
    for go in go_build::installed_go().into_iter().filter(|g| g.version_tuple() >= (1, 18, 0)) {
        for variant in VARIANTS {
            if let Err(why) = go_build::can_build_with(&go, variant, GoArch::Arm64) {
                eprintln!("xtask: arm64 VM: not building gcstw {} {variant}: {why}", go.version);
                continue;
            }
            let path = go_build::build(&dir, &go, variant, GoArch::Arm64)
                .with_context(|| format!("arm64 VM: building gcstw with {} ({variant}, arm64)", go.version))?;
            out.push(Workload { name: format!("gcstw-{}-{variant}", go.version), path });
        }
    }
    Ok(out)
}

/// The program interpreter and NEEDED libraries of an arm64 ELF file.
fn dynamic_deps(file: &Path) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let text = output(Command::new(READELF).args(["-d", "-l", "--wide"]).arg(file))
        .with_context(|| format!("{READELF} -d -l {} failed", file.display()))?;
    let interp = text.lines().find_map(|l| l.split_once("[Requesting program interpreter: ")).map(|(_, r)| r.trim_end_matches(']').to_owned());
    let needed = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split_once("Shared library: [").map(|(_, r)| r.trim_end_matches(']').to_owned()))
        .collect();
    Ok((interp, needed))
}

/// A newc ("070701") cpio archive, uncompressed (the kernel unpacks it as is).
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [self.ino, mode, 0, 0, 1, 0, u32::try_from(data.len()).expect("file under 4 GiB"), 0, 0, rdev.0, rdev.1, u32::try_from(name.len() + 1).expect("name"), 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | mode, (0, 0), data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

fn init_script(workloads: &[Workload]) -> String {
    let names: Vec<&str> = workloads.iter().map(|w| w.name.as_str()).collect();
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
btf=no; [ -e /sys/kernel/btf/vmlinux ] && btf=yes
echo "{MARK} booted uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r) machine=$(uname -m) btf=$btf cpus=$(nproc)"
for w in {names}; do
  echo "{MARK} run $w"
  timeout {RUN_TIMEOUT_S} /bin/golat record --json -- /w/$w -cycles {GC_CYCLES}
  echo "{MARK} exit $w $?"
done
echo "{MARK} done uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
"#,
        names = names.join(" ")
    )
}

fn build_initramfs(path: &Path, busybox: &Path, golat: &Path, workloads: &[Workload]) -> anyhow::Result<()> {
    let read = |p: &Path| fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let mut cpio = Cpio { out: Vec::new(), ino: 0 };
    for d in ["bin", "lib", "dev", "proc", "sys", "tmp", "w"] {
        cpio.dir(d);
    }
    cpio.entry("dev/console", 0o020_600, (5, 1), &[]);
    cpio.file("bin/busybox", 0o755, &read(busybox)?);
    cpio.file("init", 0o755, init_script(workloads).as_bytes());
    cpio.file("bin/golat", 0o755, &read(golat)?);
    for w in workloads {
        cpio.file(&format!("w/{}", w.name), 0o755, &read(&w.path)?);
    }
    // The loader and libraries the dynamic files need, from the arm64 glibc of the cross
    // toolchain (Debian's libc6-arm64-cross, the glibc golat was linked against), by name.
    let mut todo: Vec<PathBuf> = vec![golat.to_owned()];
    todo.extend(workloads.iter().map(|w| w.path.clone()));
    let mut libs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut interps: BTreeMap<String, ()> = BTreeMap::new();
    while let Some(file) = todo.pop() {
        let (interp, needed) = dynamic_deps(&file)?;
        if let Some(i) = interp {
            interps.insert(i, ());
        }
        for lib in needed {
            if libs.contains_key(&lib) {
                continue;
            }
            let p = Path::new(CROSS_LIB_DIR).join(&lib);
            ensure!(p.exists(), "arm64 VM: {} needs {lib}, not found in {CROSS_LIB_DIR}", file.display());
            libs.insert(lib, p.clone());
            todo.push(p);
        }
    }
    for interp in interps.keys() {
        let name = Path::new(interp).file_name().context("interpreter name")?;
        ensure!(interp.starts_with("/lib/") && !interp[5..].contains('/'), "arm64 VM: unexpected program interpreter {interp}");
        let name = name.to_string_lossy().into_owned();
        libs.entry(name.clone()).or_insert_with(|| Path::new(CROSS_LIB_DIR).join(name));
    }
    for (name, p) in &libs {
        cpio.file(&format!("lib/{name}"), 0o755, &read(p)?);
    }
    eprintln!("xtask: arm64 VM: libraries from {CROSS_LIB_DIR}: {}", libs.keys().cloned().collect::<Vec<_>>().join(" "));
    let bytes = cpio.finish();
    let tmp = path.with_extension("tmp");
    fs::File::create(&tmp).and_then(|mut f| f.write_all(&bytes)).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// What the VM printed.
struct Console {
    lines: Vec<String>,
    kernel: String,
    boot_uptime: String,
    boot_wall: Duration,
    total_wall: Duration,
}

/// Boots the VM and returns its console once the init says `done`; fails in one line when it
/// cannot start, does not boot, stops early or times out. The console is saved to `log`.
fn boot(kernel: &Path, initrd: &Path, log: &Path) -> anyhow::Result<Console> {
    let mut cmd = Command::new(QEMU);
    cmd.args(["-M", "virt", "-cpu", "max,pauth-impdef=on", "-m", "2048", "-smp", "2", "-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyAMA0 panic=-1 quiet rdinit=/init"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("xtask: running {cmd:?}");
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("arm64 VM: cannot start {QEMU}"))?;
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    for (is_err, stream) in [(false, child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)), (true, child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>))] {
        let tx = tx.clone();
        let stream = stream.context("qemu pipes")?;
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_owned();
                if tx.send((is_err, line)).is_err() {
                    break;
                }
                buf.clear();
            }
        });
    }
    drop(tx);
    let mut log_file = fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut lines = Vec::new();
    let mut stderr_last = String::new();
    let (mut booted, mut done) = (None::<(Duration, String, String)>, None::<Duration>);
    let failure = loop {
        let deadline = if booted.is_some() { HARD_TIMEOUT } else { BOOT_TIMEOUT };
        let left = deadline.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok((is_err, line)) => {
                let _ = writeln!(log_file, "{}{line}", if is_err { "qemu stderr: " } else { "" });
                println!("vm| {line}");
                if is_err {
                    stderr_last = line;
                    continue;
                }
                if let Some(rest) = line.strip_prefix(&format!("{MARK} booted ")) {
                    let field = |k: &str| rest.split(' ').find_map(|f| f.strip_prefix(k)).unwrap_or("?").to_owned();
                    ensure!(field("btf=") == "yes", "arm64 VM: the guest kernel has no /sys/kernel/btf/vmlinux");
                    booted = Some((start.elapsed(), field("uptime="), field("kernel=")));
                } else if line.starts_with(&format!("{MARK} done")) {
                    done = Some(start.elapsed());
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // qemu closed its output: it exited.
                let status = child.wait()?;
                break match (&booted, done) {
                    (_, Some(_)) => None,
                    (None, None) => Some(format!(
                        "the VM did not boot: qemu exited ({status}) before the init ran; last output: {:?}",
                        if stderr_last.is_empty() { lines.last().cloned().unwrap_or_default() } else { stderr_last.clone() }
                    )),
                    (Some(_), None) => Some(format!("the VM stopped before the init finished ({status}); last line: {:?}", lines.last().cloned().unwrap_or_default())),
                };
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                break Some(if booted.is_some() {
                    format!("the VM timed out after {} s (hard limit); last line: {:?}", HARD_TIMEOUT.as_secs(), lines.last().cloned().unwrap_or_default())
                } else {
                    format!("the VM did not boot within {} s; last line: {:?}", BOOT_TIMEOUT.as_secs(), lines.last().cloned().unwrap_or_default())
                });
            }
        }
    };
    if let Some(why) = failure {
        bail!("arm64 VM: {why} (console: {})", log.display());
    }
    let (boot_wall, boot_uptime, kernel) = booted.context("booted")?;
    Ok(Console { lines, kernel, boot_uptime, boot_wall, total_wall: done.unwrap_or_else(|| start.elapsed()) })
}

/// A number at `a.b.c` in a JSON value.
fn num(v: &Value, path: &str) -> Option<u64> {
    path.split('.').try_fold(v, |cur, p| cur.get(p))?.as_u64()
}

/// Checks each workload's run and prints one line per run; returns the failures.
fn check(console: &Console, workloads: &[Workload]) -> Vec<String> {
    let mut failures = Vec::new();
    for w in workloads {
        let start = console.lines.iter().position(|l| *l == format!("{MARK} run {}", w.name));
        let end = console.lines.iter().position(|l| l.starts_with(&format!("{MARK} exit {} ", w.name)));
        let (Some(start), Some(end)) = (start, end) else {
            failures.push(format!("{}: no output", w.name));
            continue;
        };
        match check_run(&console.lines[start + 1..end], &console.lines[end]) {
            Ok(line) => println!("arm64 {}: {line}", w.name),
            Err(e) => {
                println!("arm64 {}: FAILED: {e:#}", w.name);
                failures.push(format!("{}: {e:#}", w.name));
            }
        }
    }
    failures
}

fn check_run(lines: &[String], exit_line: &str) -> anyhow::Result<String> {
    let code = exit_line.rsplit(' ').next().unwrap_or("?");
    if code != "0" {
        // golat's own one-line error, shortened (verifier logs follow it).
        let why = lines.iter().find(|l| l.starts_with("golat: ") && !l.starts_with("golat: recording")).map(|l| l.chars().take(240).collect::<String>());
        bail!("golat record exited with {code}{}", why.map(|w| format!(": {w}")).unwrap_or_default());
    }
    let values: Vec<Value> = lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
    let rt = values.iter().find(|v| v.get("num_gc").is_some()).context("the workload printed no runtime view")?;
    let pid = num(rt, "pid").context("pid")?;
    let record = |t: &'static str| values.iter().filter(move |v| v["type"] == t).map(|v| &v["data"]);
    let summaries: Vec<&Value> = record("summary").filter(|d| num(d, "pid") == Some(pid)).collect();
    let [s] = summaries[..] else { bail!("expected one summary for pid {pid}, got {}", summaries.len()) };
    let get = |v: &Value, p: &str| num(v, p).with_context(|| format!("no {p} in {v}"));
    let (rt_cycles, rt_pauses, rt_total) = (get(rt, "num_gc")?, get(rt, "gc_pauses")?, get(rt, "pause_total_ns")?);
    let (cycles, count, total) = (get(s, "gc.cycles")?, get(s, "stw.count")?, get(s, "stw.total_ns")?);
    let line = format!(
        "golat gc.cycles={cycles} stw.count={count} stw.total_ns={total} | runtime NumGC={rt_cycles} gc_pauses={rt_pauses} PauseTotalNs={rt_total} | stw_other.count={} os_runq.count={} os_runq.p99_ns={}",
        num(s, "stw_other.count").unwrap_or(0),
        num(s, "os_runq.count").unwrap_or(0),
        num(s, "os_runq.p99_ns").unwrap_or(0),
    );
    ensure!(rt_cycles >= u64::from(GC_CYCLES), "{line}: the workload ran only {rt_cycles} GC cycles");
    ensure!(cycles == rt_cycles, "{line}: gc.cycles {cycles} != NumGC {rt_cycles}");
    ensure!(count == rt_pauses, "{line}: stw.count {count} != gc_pauses {rt_pauses}");
    ensure!(total == rt_total, "{line}: stw.total_ns {total} != PauseTotalNs {rt_total}");
    ensure!(num(s, "probe.stw_unpaired") == Some(0), "{line}: unpaired stop-the-world events");
    let lost: Vec<String> = record("probe_errors")
        .flat_map(|d| d["counters"].as_object().into_iter().flatten())
        .filter(|(_, v)| v.as_u64() != Some(0))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    ensure!(lost.is_empty(), "{line}: data lost: {}", lost.join(" "));
    Ok(line)
}
