//! The crate's error type.

use std::path::PathBuf;

use crate::version::GoVersion;

/// Everything that can go wrong while reading a Go binary. Each failure is reported once, with
/// the first reason found; no input makes this crate panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read (missing, a directory, permissions, ...).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The data does not start with the ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// The ELF headers describe more bytes than the file has (a partial copy or download).
    #[error("truncated file: {what} needs {needed} bytes but the file has {len}")]
    Truncated {
        what: &'static str,
        needed: u64,
        len: u64,
    },
    /// The ELF structures or Go tables are inconsistent.
    #[error("malformed file: {0}")]
    Malformed(String),
    /// A valid ELF file with no trace of Go (no `.go.buildinfo`, no pclntab).
    #[error("not a Go binary: no Go build information and no Go function table")]
    NotGo,
    /// Not a 64-bit little-endian amd64 or arm64 ELF file.
    #[error("unsupported architecture: {0} (only amd64 and arm64 64-bit ELF files are supported)")]
    UnsupportedArch(String),
    /// A Go binary older than [`crate::MIN_GO_VERSION`].
    #[error("Go version {found} is not supported (minimum is {min})")]
    UnsupportedGoVersion { found: String, min: GoVersion },
    /// A Go binary whose shape this crate does not handle (explained in `what`).
    #[error("unsupported Go binary: {what}")]
    Unsupported { what: String },
    /// No function of that name in `.symtab` or the pclntab.
    #[error("function {0} not found")]
    FunctionNotFound(String),
    /// The function has no return instruction (it ends in a tail call or never returns).
    #[error("function {function} has no return instruction")]
    NoReturnSites { function: String },
    /// The address is not inside the file-backed part of an executable `PT_LOAD` segment.
    #[error("address {address:#x} is not in a file-backed executable segment")]
    AddressNotMapped { address: u64 },
    /// The binary has no usable DWARF for the runtime structs and the layout table has no entry
    /// for its Go version. This crate never guesses offsets.
    #[error("no known runtime struct layout for Go {version} and no usable DWARF in the binary")]
    UnknownLayout { version: String },
    /// DWARF is present but could not be read.
    #[error("DWARF: {0}")]
    Dwarf(String),
    /// Offsets were found but fail the sanity checks (see [`crate::StructOffsets::validate`]).
    #[error("runtime struct offsets failed validation: {0}")]
    InvalidLayout(String),
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
