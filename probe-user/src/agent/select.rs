//! Which processes the agent watches: include/exclude regexes on comm, exe path and cgroup
//! path, and Go version prefixes.

use regex::Regex;

#[derive(Debug, Clone, Default)]
pub struct Filters {
    include_comm: Vec<Regex>,
    exclude_comm: Vec<Regex>,
    include_exe: Vec<Regex>,
    exclude_exe: Vec<Regex>,
    include_cgroup: Vec<Regex>,
    exclude_cgroup: Vec<Regex>,
    include_go_version: Vec<String>,
}

fn compile(key: &'static str, pats: Vec<String>) -> Result<Vec<Regex>, (&'static str, String)> {
    pats.iter().map(|p| Regex::new(p).map_err(|e| (key, format!("{p:?}: {e}")))).collect()
}

/// `includes` empty means everything is included.
fn allowed(value: &str, includes: &[Regex], excludes: &[Regex]) -> bool {
    (includes.is_empty() || includes.iter().any(|r| r.is_match(value))) && !excludes.iter().any(|r| r.is_match(value))
}

impl Filters {
    pub fn new(lists: [(&'static str, Vec<String>); 6], go_versions: Vec<String>) -> Result<Filters, (&'static str, String)> {
        let [ic, ec, ie, ee, ig, eg] = lists;
        Ok(Filters {
            include_comm: compile(ic.0, ic.1)?,
            exclude_comm: compile(ec.0, ec.1)?,
            include_exe: compile(ie.0, ie.1)?,
            exclude_exe: compile(ee.0, ee.1)?,
            include_cgroup: compile(ig.0, ig.1)?,
            exclude_cgroup: compile(eg.0, eg.1)?,
            include_go_version: go_versions,
        })
    }

    /// None when the process may be watched, else the reason it is skipped.
    pub fn reject(&self, comm: &str, exe: &str, cgroup: &str) -> Option<&'static str> {
        if !allowed(comm, &self.include_comm, &self.exclude_comm) {
            return Some("filtered_comm");
        }
        if !allowed(exe, &self.include_exe, &self.exclude_exe) {
            return Some("filtered_exe");
        }
        if !allowed(cgroup, &self.include_cgroup, &self.exclude_cgroup) {
            return Some("filtered_cgroup");
        }
        None
    }

    pub fn reject_go_version(&self, version: &str) -> Option<&'static str> {
        (!self.include_go_version.is_empty() && !self.include_go_version.iter().any(|p| version.starts_with(p.as_str())))
            .then_some("filtered_go_version")
    }
}

/// The process's cgroup v2 path (or the first v1 path), and a container id when the path's
/// last component looks like one (64 hex digits, possibly inside `docker-<id>.scope` or
/// `cri-containerd-<id>.scope`).
pub fn cgroup_of(pid: u32) -> (String, Option<String>) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| text.lines().next().and_then(|l| l.splitn(3, ':').nth(2)))
        .unwrap_or("")
        .to_owned();
    let id = path.rsplit('/').next().and_then(|last| {
        let core = last.trim_end_matches(".scope");
        let core = core.rsplit(['-', ':']).next().unwrap_or(core);
        (core.len() == 64 && core.bytes().all(|b| b.is_ascii_hexdigit())).then(|| core.to_owned())
    });
    (path, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_and_exclude() {
        let f = Filters::new(
            [
                ("include-comm", vec!["^api".into()]),
                ("exclude-comm", vec!["test$".into()]),
                ("include-exe", vec![]),
                ("exclude-exe", vec!["/tmp/".into()]),
                ("include-cgroup", vec![]),
                ("exclude-cgroup", vec![]),
            ],
            vec!["go1.22".into()],
        )
        .expect("valid");
        assert_eq!(f.reject("api-server", "/usr/bin/api", "/"), None);
        assert_eq!(f.reject("worker", "/usr/bin/api", "/"), Some("filtered_comm"));
        assert_eq!(f.reject("api-test", "/usr/bin/api", "/"), Some("filtered_comm"));
        assert_eq!(f.reject("api", "/tmp/api", "/"), Some("filtered_exe"));
        assert_eq!(f.reject_go_version("go1.22.12"), None);
        assert_eq!(f.reject_go_version("go1.21.1"), Some("filtered_go_version"));
        let bad = Filters::new(
            [("include-comm", vec!["(".into()]), ("a", vec![]), ("b", vec![]), ("c", vec![]), ("d", vec![]), ("e", vec![])],
            vec![],
        );
        assert_eq!(bad.unwrap_err().0, "include-comm");
    }
}
