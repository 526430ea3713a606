use which::which;

/// Rebuild the eBPF object when bpf-linker changes (a new LLVM can change codegen), as in
/// aya-template.
fn main() {
    let bpf_linker = which("bpf-linker").expect(
        "bpf-linker not found on PATH: run `cargo xtask setup` (installs it with Debian's LLVM 22)",
    );
    println!("cargo:rerun-if-changed={}", bpf_linker.to_str().expect("bpf-linker path is UTF-8"));
}
