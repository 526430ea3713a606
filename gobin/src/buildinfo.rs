//! Go build information: the `.go.buildinfo` blob the linker writes into every Go binary since
//! Go 1.13, decoded as Go's own `debug/buildinfo` does (src/debug/buildinfo/buildinfo.go at
//! go1.22.0, `Read` and `elfExe.DataStart`), and the module/settings text decoded as
//! `runtime/debug.ParseBuildInfo` does (src/runtime/debug/mod.go at go1.22.0).
//!
//! Blob layout (16-byte aligned, 32-byte header):
//! ```text
//! +0   "\xff Go buildinf:"     14-byte magic
//! +14  ptrSize                 4 or 8
//! +15  flags                   bit 0: big-endian, bit 1: strings inline (Go 1.18+)
//! inline (1.18+):  +32 uvarint len, version bytes, uvarint len, modinfo bytes
//! pointers (<1.18): +16 *string(runtime.buildVersion), +16+ptrSize *string(runtime.modinfo),
//!                   each pointing at a Go string header {data uintptr, len int}
//! ```
//! `modinfo` is framed by two 16-byte sentinels, stripped when `len >= 33 && mod[len-17] == '\n'`.

use serde::Serialize;

use crate::version::{GoVersion, GoVersionKind};

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const ALIGN: usize = 16;
const HEADER_SIZE: usize = 32;
/// `debug/buildinfo` reads at most this much from the data start.
pub(crate) const SEARCH_LIMIT: usize = 64 * 1024;
/// Sanity bound on a string we are willing to read through a pointer.
const MAX_STRING: u64 = 1 << 20;

/// Where the version string was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildInfoSource {
    /// `.go.buildinfo` with inline strings (Go 1.18+).
    Inline,
    /// `.go.buildinfo` with pointers to string headers (Go 1.13–1.17).
    Pointers,
    /// The `runtime.buildVersion` symbol (no build-info blob found); no module information.
    BuildVersionSymbol,
}

/// A module line of the build information (`mod`, `dep`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Module {
    pub path: String,
    /// `(devel)` for the main module of a local build.
    pub version: String,
    pub sum: String,
    /// A `=>` replacement line that followed this module.
    pub replace: Option<Box<Module>>,
}

/// What the Go toolchain recorded about the build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    /// The version string exactly as recorded, e.g. `go1.22.12` (`runtime.Version()`).
    pub go_version_raw: String,
    /// Parsed [`Self::go_version_raw`].
    pub go_version: GoVersion,
    pub go_version_kind: GoVersionKind,
    /// Import path of the main package (`path` line), e.g. `golat.test/inspect`.
    pub path: Option<String>,
    /// The main module (`mod` line).
    pub main_module: Option<Module>,
    /// Dependencies (`dep` lines).
    pub deps: Vec<Module>,
    /// Build settings (`build` lines, Go 1.18+) in recorded order, e.g. `("-buildmode", "pie")`,
    /// `("CGO_ENABLED", "1")`, `("GOARCH", "amd64")`, `("-pgo", "/src/default.pgo")`,
    /// `("-ldflags", "-s -w")`.
    pub settings: Vec<(String, String)>,
    pub source: BuildInfoSource,
}

impl BuildInfo {
    /// The value of a build setting, e.g. `setting("CGO_ENABLED") == Some("1")`.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Builds a `BuildInfo` from the two raw strings of the blob. `None` if the version does
    /// not parse as a Go version.
    pub(crate) fn from_strings(version: &str, modinfo: &str, source: BuildInfoSource) -> Option<BuildInfo> {
        let (go_version, kind) = GoVersion::parse(version)?;
        let mut info = BuildInfo {
            go_version_raw: version.to_owned(),
            go_version,
            go_version_kind: kind,
            path: None,
            main_module: None,
            deps: Vec::new(),
            settings: Vec::new(),
            source,
        };
        parse_modinfo(modinfo, &mut info);
        Some(info)
    }
}

/// Finds and decodes the blob in `data` (the bytes from the data start). `read_ptr` reads a
/// pointer-sized little-endian word at a virtual address (applying a RELATIVE relocation when
/// the file holds 0) and `read_bytes` reads bytes at a virtual address.
pub(crate) fn decode_blob(
    data: &[u8],
    read_ptr: &dyn Fn(u64) -> Option<u64>,
    read_bytes: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
    blob_vaddr: u64,
) -> Option<(String, String, BuildInfoSource)> {
    let limit = data.len().min(SEARCH_LIMIT);
    let data = data.get(..limit)?;
    let mut start = 0usize;
    let blob_off = loop {
        let rest = data.get(start..)?;
        let i = start + find(rest, MAGIC)?;
        if data.len() - i < HEADER_SIZE {
            return None;
        }
        if i.is_multiple_of(ALIGN) {
            break i;
        }
        start = (i + ALIGN - 1) & !(ALIGN - 1);
    };
    let blob = data.get(blob_off..)?;
    let ptr_size = *blob.get(14)?;
    let flags = *blob.get(15)?;
    let (version, modinfo, source) = if flags & 2 != 0 {
        let rest = blob.get(HEADER_SIZE..)?;
        let (v, rest) = decode_string(rest)?;
        let (m, _) = decode_string(rest).unwrap_or((&[], &[]));
        (v.to_vec(), m.to_vec(), BuildInfoSource::Inline)
    } else {
        if flags & 1 != 0 || ptr_size != 8 {
            // Big-endian or 32-bit: not an architecture we support.
            return None;
        }
        let at = blob_vaddr.checked_add(blob_off as u64)?;
        let read_string = |field: u64| -> Option<Vec<u8>> {
            let hdr = read_ptr(at.checked_add(field)?)?;
            let ptr = read_ptr(hdr)?;
            let len = read_ptr(hdr.checked_add(8)?)?;
            if len > MAX_STRING {
                return None;
            }
            read_bytes(ptr, len)
        };
        let v = read_string(16)?;
        let m = read_string(24).unwrap_or_default();
        (v, m, BuildInfoSource::Pointers)
    };
    if version.is_empty() {
        return None;
    }
    let mut modinfo = modinfo;
    if modinfo.len() >= 33 && modinfo.get(modinfo.len() - 17) == Some(&b'\n') {
        modinfo = modinfo.get(16..modinfo.len() - 16)?.to_vec();
    } else {
        modinfo.clear();
    }
    Some((
        String::from_utf8_lossy(&version).into_owned(),
        String::from_utf8_lossy(&modinfo).into_owned(),
        source,
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A uvarint-length-prefixed string (encoding/binary.Uvarint).
fn decode_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut len: u64 = 0;
    let mut shift = 0u32;
    let mut n = 0usize;
    loop {
        let b = *data.get(n)?;
        n += 1;
        if shift >= 64 {
            return None;
        }
        len |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    let len = usize::try_from(len).ok()?;
    let end = n.checked_add(len)?;
    Some((data.get(n..end)?, data.get(end..)?))
}

fn parse_module(fields: &str) -> Option<Module> {
    let mut it = fields.split('\t');
    let path = it.next()?.to_owned();
    if path.is_empty() {
        return None;
    }
    Some(Module {
        path,
        version: it.next().unwrap_or_default().to_owned(),
        sum: it.next().unwrap_or_default().to_owned(),
        replace: None,
    })
}

/// `runtime/debug.ParseBuildInfo`, lenient: malformed lines are skipped.
fn parse_modinfo(text: &str, info: &mut BuildInfo) {
    // Which module a following "=>" line replaces: None, the main module, or the last dep.
    #[derive(PartialEq)]
    enum Last {
        None,
        Main,
        Dep,
    }
    let mut last = Last::None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("path\t") {
            info.path = Some(p.to_owned());
            last = Last::None;
        } else if let Some(m) = line.strip_prefix("mod\t") {
            info.main_module = parse_module(m);
            last = Last::Main;
        } else if let Some(d) = line.strip_prefix("dep\t") {
            if let Some(m) = parse_module(d) {
                info.deps.push(m);
                last = Last::Dep;
            }
        } else if let Some(r) = line.strip_prefix("=>\t") {
            let target = match last {
                Last::Main => info.main_module.as_mut(),
                Last::Dep => info.deps.last_mut(),
                Last::None => None,
            };
            if let (Some(t), Some(m)) = (target, parse_module(r)) {
                t.replace = Some(Box::new(m));
            }
            last = Last::None;
        } else if let Some(kv) = line.strip_prefix("build\t") {
            if let Some(kv) = parse_setting(kv) {
                info.settings.push(kv);
            }
        }
    }
}

fn parse_setting(kv: &str) -> Option<(String, String)> {
    let (key, raw_value) = match kv.as_bytes().first()? {
        b'=' => return None,
        b'"' | b'`' => {
            let (key, used) = go_unquote_prefix(kv)?;
            let rest = kv.get(used..)?.strip_prefix('=')?;
            (key, rest)
        }
        _ => {
            let (k, v) = kv.split_once('=')?;
            (k.to_owned(), v)
        }
    };
    let value = match raw_value.as_bytes().first() {
        Some(b'"' | b'`') => go_unquote_prefix(raw_value)?.0,
        _ => raw_value.to_owned(),
    };
    Some((key, value))
}

/// Unquotes the Go string literal (`"..."` with escapes, or `` `...` ``) at the start of `s`,
/// returning it and the number of bytes it used (`strconv.QuotedPrefix` + `strconv.Unquote`).
fn go_unquote_prefix(s: &str) -> Option<(String, usize)> {
    let mut chars = s.char_indices();
    let (_, quote) = chars.next()?;
    if quote == '`' {
        let end = s.get(1..)?.find('`')? + 1;
        return Some((s.get(1..end)?.to_owned(), end + 1));
    }
    if quote != '"' {
        return None;
    }
    let mut out = Vec::<u8>::new();
    let bytes = s.as_bytes();
    let mut i = 1usize;
    let hex = |from: usize, n: usize| -> Option<u32> { u32::from_str_radix(s.get(from..from + n)?, 16).ok() };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some((String::from_utf8_lossy(&out).into_owned(), i + 1)),
            b'\\' => {
                let c = *bytes.get(i + 1)?;
                i += 2;
                let simple = match c {
                    b'a' => Some(7u8),
                    b'b' => Some(8),
                    b'f' => Some(12),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'v' => Some(11),
                    b'\\' => Some(b'\\'),
                    b'\'' => Some(b'\''),
                    b'"' => Some(b'"'),
                    _ => None,
                };
                if let Some(b) = simple {
                    out.push(b);
                    continue;
                }
                match c {
                    b'x' => {
                        out.push(u8::try_from(hex(i, 2)?).ok()?);
                        i += 2;
                    }
                    b'0'..=b'7' => {
                        let v = u32::from_str_radix(s.get(i - 1..i + 2)?, 8).ok()?;
                        out.push(u8::try_from(v).ok()?);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if c == b'u' { 4 } else { 8 };
                        let ch = char::from_u32(hex(i, n)?)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        i += n;
                    }
                    _ => return None,
                }
            }
            b'\n' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_quoting() {
        assert_eq!(parse_setting("-buildmode=pie"), Some(("-buildmode".into(), "pie".into())));
        assert_eq!(parse_setting("-ldflags=\"-s -w\""), Some(("-ldflags".into(), "-s -w".into())));
        assert_eq!(
            parse_setting("\"a=b\"=\"x\\ty\\x41\\u00e9\""),
            Some(("a=b".into(), "x\tyAé".into()))
        );
        assert_eq!(parse_setting("k=`raw \"v\"`"), Some(("k".into(), "raw \"v\"".into())));
        assert_eq!(parse_setting("CGO_CFLAGS="), Some(("CGO_CFLAGS".into(), String::new())));
        assert_eq!(parse_setting("=x"), None);
        assert_eq!(parse_setting("\"unterminated"), None);
        assert_eq!(parse_setting(""), None);
    }

    #[test]
    fn modinfo_lines() {
        let text = "path\tex.com/cmd\nmod\tex.com\t(devel)\t\ndep\tgolang.org/x/sys\tv0.1.0\th1:abc\n=>\t../sys\t\t\nbuild\t-buildmode=exe\nbuild\t-pgo=/x/default.pgo\n";
        let info = BuildInfo::from_strings("go1.22.1", text, BuildInfoSource::Inline).unwrap();
        assert_eq!(info.path.as_deref(), Some("ex.com/cmd"));
        assert_eq!(info.main_module.as_ref().unwrap().path, "ex.com");
        assert_eq!(info.deps.len(), 1);
        assert_eq!(info.deps[0].replace.as_ref().unwrap().path, "../sys");
        assert_eq!(info.setting("-pgo"), Some("/x/default.pgo"));
        assert_eq!(info.setting("-buildmode"), Some("exe"));
    }

    #[test]
    fn blob_inline_and_pointers() {
        let mut modinfo = vec![0u8; 16];
        modinfo.extend_from_slice(b"path\tp\nmod\tp\t(devel)\t\n");
        modinfo.extend_from_slice(&[0u8; 16]);
        // Inline blob, after some unaligned decoy magic.
        let mut data = vec![0u8; 48];
        data[3..17].copy_from_slice(MAGIC);
        data[32..46].copy_from_slice(MAGIC);
        data[46] = 8;
        data[47] = 2;
        data.extend_from_slice(&[0u8; 16]);
        data.push(9);
        data.extend_from_slice(b"go1.21.13");
        data.push(modinfo.len() as u8);
        data.extend_from_slice(&modinfo);
        let none_ptr = |_: u64| None;
        let none_bytes = |_: u64, _: u64| None;
        let (v, m, s) = decode_blob(&data, &none_ptr, &none_bytes, 0).unwrap();
        assert_eq!((v.as_str(), s), ("go1.21.13", BuildInfoSource::Inline));
        assert!(m.starts_with("path\tp\n"));

        // Pointer blob: header at 0x1000, string headers at 0x2000/0x2010.
        let mut blob = vec![0u8; 32];
        blob[..14].copy_from_slice(MAGIC);
        blob[14] = 8;
        let words: std::collections::HashMap<u64, u64> =
            [(0x1010, 0x2000), (0x1018, 0x2010), (0x2000, 0x3000), (0x2008, 8), (0x2010, 0x4000), (0x2018, modinfo.len() as u64)]
                .into_iter()
                .collect();
        let read_ptr = |a: u64| words.get(&a).copied();
        let mi = modinfo.clone();
        let read_bytes = move |a: u64, n: u64| match a {
            0x3000 => Some(b"go1.17.3"[..n as usize].to_vec()),
            0x4000 => Some(mi[..n as usize].to_vec()),
            _ => None,
        };
        let (v, m, s) = decode_blob(&blob, &read_ptr, &read_bytes, 0x1000).unwrap();
        assert_eq!((v.as_str(), s), ("go1.17.3", BuildInfoSource::Pointers));
        assert!(m.contains("mod\tp"));
    }

    #[test]
    fn blob_garbage() {
        let none_ptr = |_: u64| None;
        let none_bytes = |_: u64, _: u64| None;
        assert!(decode_blob(&[], &none_ptr, &none_bytes, 0).is_none());
        let mut data = vec![0u8; 40];
        data[..14].copy_from_slice(MAGIC);
        data[15] = 2;
        data[32] = 0xff; // uvarint running off the end
        assert!(decode_blob(&data, &none_ptr, &none_bytes, 0).is_none());
        data[14] = 8;
        data[15] = 0; // pointers that resolve nowhere
        assert!(decode_blob(&data, &none_ptr, &none_bytes, 0).is_none());
    }
}
