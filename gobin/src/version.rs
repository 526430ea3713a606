//! Go version strings (`runtime.Version()`, `go version`).

use std::fmt;

use serde::Serialize;

/// A Go release number, ordered numerically (`go1.9` < `go1.10`).
///
/// Pre-releases (`go1.21rc2`) and development builds (`devel go1.23-abcdef ...`) parse to the
/// release they precede with `patch == 0`; [`GoVersionKind`] tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// What kind of build a Go version string describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoVersionKind {
    /// `go1.22.12`, `go1.20`
    Release,
    /// `go1.21rc2`, `go1.18beta1`
    Prerelease,
    /// `devel go1.23-abcdef ...` or `devel +abcdef ...`: a toolchain built from a commit.
    Devel,
}

impl GoVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self { major, minor, patch }
    }

    /// Parses `go1.22.12`, `go1.20`, `go1.21rc2`, `go1.22.1 X:loopvar` (experiments after a
    /// space are ignored) and `devel go1.23-abcdef ...`. Returns `None` for anything else.
    pub fn parse(raw: &str) -> Option<(GoVersion, GoVersionKind)> {
        let raw = raw.trim();
        let (s, devel) = match raw.strip_prefix("devel") {
            Some(rest) => (rest.trim_start(), true),
            None => (raw, false),
        };
        let s = s.split_whitespace().next()?;
        let s = s.strip_prefix("go")?;
        let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (nums, suffix) = s.split_at(num_end);
        let mut parts = nums.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        let kind = if devel {
            GoVersionKind::Devel
        } else if suffix.is_empty() {
            GoVersionKind::Release
        } else if suffix.starts_with("rc") || suffix.starts_with("beta") {
            GoVersionKind::Prerelease
        } else if suffix.starts_with('-') {
            // "go1.23-20240101-RC00 cl/..." style vendor builds: treat as development builds.
            GoVersionKind::Devel
        } else {
            return None;
        };
        Some((GoVersion { major, minor, patch }, kind))
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let p = |s| GoVersion::parse(s);
        assert_eq!(p("go1.22.12"), Some((GoVersion::new(1, 22, 12), GoVersionKind::Release)));
        assert_eq!(p("go1.20"), Some((GoVersion::new(1, 20, 0), GoVersionKind::Release)));
        assert_eq!(p("go1.21rc2"), Some((GoVersion::new(1, 21, 0), GoVersionKind::Prerelease)));
        assert_eq!(p("go1.18beta1"), Some((GoVersion::new(1, 18, 0), GoVersionKind::Prerelease)));
        assert_eq!(
            p("go1.22.1 X:loopvar"),
            Some((GoVersion::new(1, 22, 1), GoVersionKind::Release))
        );
        assert_eq!(
            p("devel go1.23-7f7a2f2 Tue Jan 2 15:04:05 2024 +0000"),
            Some((GoVersion::new(1, 23, 0), GoVersionKind::Devel))
        );
        assert_eq!(p("go1.9.2"), Some((GoVersion::new(1, 9, 2), GoVersionKind::Release)));
        for bad in ["", "go", "1.22", "gox", "go1.2.3.4", "go1.22junk", "devel +abcdef"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn orders_numerically() {
        assert!(GoVersion::new(1, 9, 0) < GoVersion::new(1, 10, 0));
        assert!(GoVersion::new(1, 22, 12) > GoVersion::new(1, 22, 2));
        assert_eq!(GoVersion::new(1, 17, 0).to_string(), "go1.17.0");
    }
}
