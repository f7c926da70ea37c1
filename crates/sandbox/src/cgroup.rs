//! A container's resource use read straight from its cgroup files, when AnyCode
//! runs on the same Linux machine as the Docker engine (not Docker Desktop's VM,
//! not a remote engine): no call to Docker, so reading it for every running sandbox
//! every few seconds costs dockerd and containerd nothing (issue 14: Docker's
//! one-shot stats cost them about 1.5 % of a core per 50 idle sandboxes, read every
//! 3 s).
//!
//! Where: cgroup v1 `/sys/fs/cgroup/{cpuacct,memory}/<parent>/<id>/` and v2
//! `/sys/fs/cgroup/<parent>/<id>/`, for the `cgroupfs` driver (`<parent>` =
//! `docker`) and the `systemd` driver (`system.slice/docker-<id>.scope`). Figures as
//! `docker stats` gives them: memory without the inactive page cache. Blocking
//! (small sysfs reads): call it off the async runtime.

use crate::Stats;
use std::path::{Path, PathBuf};

/// The cgroup file system's root.
const ROOT: &str = "/sys/fs/cgroup";

/// Reads container `id`'s (the full 64-hex id) use from its cgroup, or `None`
/// when its cgroup is not on this machine (another host, a VM, another layout).
pub fn read(id: &str) -> Option<Stats> {
    read_in(Path::new(ROOT), id)
}

/// [`read`] under another root (tests).
pub fn read_in(root: &Path, id: &str) -> Option<Stats> {
    if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let dirs = |base: PathBuf| [base.join("docker").join(id), base.join("system.slice").join(format!("docker-{id}.scope"))];
    // cgroup v1: a hierarchy per controller.
    for (cpu, mem) in dirs(root.join("cpuacct")).into_iter().zip(dirs(root.join("memory"))) {
        let Some(cpu_ns) = number(&cpu.join("cpuacct.usage")) else { continue };
        let usage = number(&mem.join("memory.usage_in_bytes")).unwrap_or(0);
        let cache = stat(&mem.join("memory.stat"), "total_inactive_file").unwrap_or(0);
        let limit = number(&mem.join("memory.limit_in_bytes")).unwrap_or(0);
        return Some(Stats { cpu_total_ns: cpu_ns, memory_bytes: usage.saturating_sub(cache), memory_limit_bytes: limit });
    }
    // cgroup v2: one hierarchy.
    for dir in dirs(root.to_path_buf()) {
        let Some(cpu_us) = stat(&dir.join("cpu.stat"), "usage_usec") else { continue };
        let usage = number(&dir.join("memory.current")).unwrap_or(0);
        let cache = stat(&dir.join("memory.stat"), "inactive_file").unwrap_or(0);
        // `max` (no cap) reads as 0, as Docker's own stats do without a limit.
        let limit = number(&dir.join("memory.max")).unwrap_or(0);
        return Some(Stats { cpu_total_ns: cpu_us.saturating_mul(1000), memory_bytes: usage.saturating_sub(cache), memory_limit_bytes: limit });
    }
    None
}

fn number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
fn stat(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4ca2ac51078d3074e87ac0075174f2efc973612ffaaeb9e42855a33c9f2a7cba";

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_cgroup_v1_as_docker_stats_does() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, &format!("cpuacct/docker/{ID}/cpuacct.usage"), "123456789\n");
        write(r, &format!("memory/docker/{ID}/memory.usage_in_bytes"), "10000000\n");
        write(r, &format!("memory/docker/{ID}/memory.stat"), "cache 5\ninactive_file 1\ntotal_inactive_file 4000000\n");
        write(r, &format!("memory/docker/{ID}/memory.limit_in_bytes"), "536870912\n");
        let s = read_in(r, ID).unwrap();
        assert_eq!((s.cpu_total_ns, s.memory_bytes, s.memory_limit_bytes), (123_456_789, 6_000_000, 536_870_912));
        assert!(read_in(r, &ID.replace('4', "5")).is_none(), "another container");
        assert!(read_in(r, "../../etc").is_none(), "only container ids");
    }

    #[test]
    fn reads_cgroup_v2_with_the_systemd_driver() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let dir = format!("system.slice/docker-{ID}.scope");
        write(r, &format!("{dir}/cpu.stat"), "usage_usec 2500\nuser_usec 2000\n");
        write(r, &format!("{dir}/memory.current"), "8000\n");
        write(r, &format!("{dir}/memory.stat"), "anon 10\ninactive_file 3000\n");
        write(r, &format!("{dir}/memory.max"), "max\n");
        let s = read_in(r, ID).unwrap();
        assert_eq!((s.cpu_total_ns, s.memory_bytes, s.memory_limit_bytes), (2_500_000, 5000, 0));
    }
}
