//! How many CPUs this process may actually use: the default size of a pool.
//!
//! The machine's CPU count overstates what a process confined by `taskset`, by a
//! container's cpuset or by a CPU quota can run on. [`usable_cpus`] takes the smallest of:
//!
//! - the CPUs in the process's affinity mask (`sched_getaffinity(2)`);
//! - the cgroup v2 bandwidth limit, `cpu.max` (`"$QUOTA $PERIOD"`, or `"max $PERIOD"` for
//!   none), in the process's cgroup and in each of its ancestors, since a parent's limit
//!   binds its children too;
//! - the cgroup v1 CFS limit, `cpu.cfs_quota_us / cpu.cfs_period_us` (a quota of `-1`
//!   means none), in the same places of the v1 `cpu` hierarchy;
//!
//! each quota rounded up to whole CPUs (1.5 CPUs of bandwidth keep two workers busy), and
//! never less than one. A file that is missing or does not parse sets no limit: the count
//! is a sizing hint, and guessing too many workers is better than failing.
//!
//! Where each hierarchy is mounted, and which part of it is visible, comes from
//! `/proc/self/mountinfo`: in a container without a cgroup namespace `/proc/self/cgroup`
//! names the host's path while the mount's root is the container's own cgroup, so the path
//! is taken relative to that root. Without a matching mount line the conventional places
//! (`/sys/fs/cgroup` for v2, `/sys/fs/cgroup/cpu` for v1) are used.
//!
//! The parsing is done by pure functions on strings; only [`usable_cpus`] and the two
//! readers below it touch the file system.
//!
//! # References
//! - [`sched_getaffinity(2)`](https://man7.org/linux/man-pages/man2/sched_getaffinity.2.html)
//! - [`cgroups(7)`](https://man7.org/linux/man-pages/man7/cgroups.7.html) (`/proc/pid/cgroup`)
//! - [`proc_pid_mountinfo(5)`](https://man7.org/linux/man-pages/man5/proc_pid_mountinfo.5.html)
//! - [cgroup v2, `cpu.max`](https://docs.kernel.org/admin-guide/cgroup-v2.html#cpu-interface-files)
//! - [CFS bandwidth control (v1)](https://docs.kernel.org/scheduler/sched-bwc.html)

use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

/// Where the v2 hierarchy is found when `/proc/self/mountinfo` does not say.
const V2_DEFAULT_MOUNT: &str = "/sys/fs/cgroup";
/// Where the v1 `cpu` hierarchy is found when `/proc/self/mountinfo` does not say.
const V1_DEFAULT_MOUNT: &str = "/sys/fs/cgroup/cpu";

/// The number of CPUs this process can use: the CPUs in its affinity mask, further limited
/// by any cgroup (v2 or v1) CPU quota on its cgroup or an ancestor, rounded up; at least 1.
///
/// This is the size a pool should default to. It differs from the machine's CPU count
/// (Python's `os.cpu_count()`) under `taskset`, a container cpuset or a CPU quota. Files
/// that are missing or unreadable impose no limit. If the affinity mask cannot be read
/// (more CPUs than a `cpu_set_t` holds), the standard library's
/// [`std::thread::available_parallelism`] stands in for it.
///
/// # References
/// - [`sched_getaffinity(2)`](https://man7.org/linux/man-pages/man2/sched_getaffinity.2.html)
pub fn usable_cpus() -> usize {
    limit(affinity_cpus(), cgroup_quotas())
}

/// The number of CPUs in this process's affinity mask.
fn affinity_cpus() -> usize {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => usize::try_from(set.count()).unwrap_or(usize::MAX),
        Err(_) => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
    }
}

/// Every CPU quota (in whole CPUs) set on this process's cgroups or their ancestors.
fn cgroup_quotas() -> Vec<usize> {
    let Ok(memberships) = fs::read_to_string("/proc/self/cgroup") else {
        return Vec::new();
    };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut quotas = Vec::new();
    for hierarchy in [Hierarchy::V2, Hierarchy::V1Cpu] {
        let Some(path) = cgroup_path(&memberships, hierarchy) else {
            continue;
        };
        let mount = find_mount(&mountinfo, hierarchy).unwrap_or_else(|| Mount {
            root: "/".to_owned(),
            point: PathBuf::from(match hierarchy {
                Hierarchy::V2 => V2_DEFAULT_MOUNT,
                Hierarchy::V1Cpu => V1_DEFAULT_MOUNT,
            }),
        });
        for dir in quota_dirs(&mount, path) {
            quotas.extend(read_quota(&dir, hierarchy));
        }
    }
    quotas
}

/// The quota set in one cgroup directory, if any.
fn read_quota(dir: &Path, hierarchy: Hierarchy) -> Option<usize> {
    let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
    match hierarchy {
        Hierarchy::V2 => parse_cpu_max(&read("cpu.max")?),
        Hierarchy::V1Cpu => parse_cfs(&read("cpu.cfs_quota_us")?, &read("cpu.cfs_period_us")?),
    }
}

/// The two kinds of cgroup hierarchy that can carry a CPU quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hierarchy {
    /// The unified (v2) hierarchy.
    V2,
    /// A v1 hierarchy with the `cpu` controller attached.
    V1Cpu,
}

/// Where a cgroup hierarchy is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The cgroup path, within the hierarchy, that the mount point shows.
    root: String,
    /// Where it is mounted.
    point: PathBuf,
}

/// The smallest of the affinity count and the quotas, and at least 1.
fn limit(affinity: usize, quotas: impl IntoIterator<Item = usize>) -> usize {
    quotas.into_iter().fold(affinity, usize::min).max(1)
}

/// `quota / period` rounded up, or `None` for a zero period or a zero quota.
fn ceil_ratio(quota: u64, period: u64) -> Option<usize> {
    if quota == 0 || period == 0 {
        return None;
    }
    usize::try_from(quota.div_ceil(period)).ok()
}

/// The quota in whole CPUs from the text of a v2 `cpu.max` file: `"max 100000"` is no
/// limit (`None`), `"150000 100000"` is 2. A missing period means the default, 100 ms.
fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period = fields
        .next()
        .map_or(Some(100_000), |p| p.parse::<u64>().ok())?;
    if fields.next().is_some() || quota == "max" {
        return None;
    }
    ceil_ratio(quota.parse().ok()?, period)
}

/// The quota in whole CPUs from the texts of the v1 `cpu.cfs_quota_us` and
/// `cpu.cfs_period_us` files: a quota of `-1` is no limit (`None`).
fn parse_cfs(quota: &str, period: &str) -> Option<usize> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    ceil_ratio(u64::try_from(quota).ok()?, period)
}

/// The path of this process's cgroup in `hierarchy`, from the text of `/proc/self/cgroup`.
///
/// Each line reads `ID:CONTROLLERS:PATH`. The v2 line is `0::PATH`; a v1 line lists its
/// controllers separated by commas (`4:cpu,cpuacct:/user.slice`).
fn cgroup_path(text: &str, hierarchy: Hierarchy) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let id = fields.next()?;
        let controllers = fields.next()?;
        let path = fields.next()?;
        let matches = match hierarchy {
            Hierarchy::V2 => id == "0" && controllers.is_empty(),
            Hierarchy::V1Cpu => controllers.split(',').any(|c| c == "cpu"),
        };
        matches.then_some(path)
    })
}

/// The first mount of `hierarchy` in the text of `/proc/self/mountinfo`.
///
/// A line reads `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER`;
/// v2 is the file-system type `cgroup2`, a v1 `cpu` hierarchy is type `cgroup` with `cpu`
/// among its super options.
fn find_mount(text: &str, hierarchy: Hierarchy) -> Option<Mount> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        let (root, point) = (fields.get(3)?, fields.get(4)?);
        if dash < 6 {
            return None;
        }
        let fstype = fields.get(dash + 1)?;
        let matches = match hierarchy {
            Hierarchy::V2 => *fstype == "cgroup2",
            Hierarchy::V1Cpu => {
                *fstype == "cgroup"
                    && fields
                        .get(dash + 3)
                        .is_some_and(|opts| opts.split(',').any(|o| o == "cpu"))
            }
        };
        matches.then(|| Mount {
            root: unescape_octal(root),
            point: PathBuf::from(unescape_octal(point)),
        })
    })
}

/// Undoes mountinfo's escapes: space, tab, newline and backslash appear as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        let value = digits
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| {
                let text = std::str::from_utf8(d).ok()?;
                u8::from_str_radix(text, 8).ok()
            });
        if let Some(value) = value {
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directories whose quota binds a cgroup at `path`: its own, then each ancestor up
/// to the mount point, deepest first.
///
/// `path` is taken relative to the mount's root. A cgroup outside the mounted part of the
/// hierarchy (outside a container's own cgroup, say, or a path with `..`, which cgroup
/// namespaces produce for such cgroups) is not visible: only the mount point is searched.
fn quota_dirs(mount: &Mount, path: &str) -> Vec<PathBuf> {
    let relative = relative_to_root(&mount.root, path).unwrap_or("");
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    let visible = if parts.iter().any(|p| *p == ".." || *p == ".") {
        &[][..]
    } else {
        &parts[..]
    };
    let mut dirs: Vec<PathBuf> = Vec::with_capacity(visible.len() + 1);
    let mut dir = mount.point.clone();
    dirs.push(dir.clone());
    for part in visible {
        dir.push(part);
        dirs.push(dir.clone());
    }
    dirs.reverse();
    dirs
}

/// `path` with the mount's `root` taken off the front, or `None` if it lies outside it.
fn relative_to_root<'a>(root: &str, path: &'a str) -> Option<&'a str> {
    let root = root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(root: &str, point: &str) -> Mount {
        Mount {
            root: root.to_owned(),
            point: PathBuf::from(point),
        }
    }

    #[test]
    fn cpu_max_rounds_quotas_up_and_reads_max_as_no_limit() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("200000 100000"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("400000 100000"), Some(4));
        assert_eq!(parse_cpu_max("300000"), Some(3));
        assert_eq!(parse_cpu_max("max"), None);
    }

    #[test]
    fn cpu_max_that_does_not_parse_sets_no_limit() {
        for text in [
            "",
            "\n",
            "lots 100000",
            "150000 soon",
            "150000 0",
            "0 100000",
            "-5 100000",
            "1 2 3",
            "1.5 1",
        ] {
            assert_eq!(parse_cpu_max(text), None, "{text:?}");
        }
    }

    #[test]
    fn cfs_quota_rounds_up_and_reads_minus_one_as_no_limit() {
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("150000\n", "100000\n"), Some(2));
        assert_eq!(parse_cfs("100000", "100000"), Some(1));
        assert_eq!(parse_cfs("250000", "50000"), Some(5));
        assert_eq!(parse_cfs("", "100000"), None);
        assert_eq!(parse_cfs("100000", "0"), None);
        assert_eq!(parse_cfs("100000", "x"), None);
        assert_eq!(parse_cfs("0", "100000"), None);
    }

    #[test]
    fn limit_is_the_smallest_and_at_least_one() {
        assert_eq!(limit(8, []), 8);
        assert_eq!(limit(8, [2]), 2);
        assert_eq!(limit(2, [8]), 2);
        assert_eq!(limit(8, [4, 3, 6]), 3);
        assert_eq!(limit(0, []), 1);
        assert_eq!(limit(4, [0]), 1);
    }

    #[test]
    fn cgroup_path_finds_the_v2_line_and_the_v1_cpu_line() {
        let hybrid = "12:cpuset:/\n4:cpu,cpuacct:/user.slice/app\n1:name=systemd:/init.scope\n\
                      0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            cgroup_path(hybrid, Hierarchy::V2),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(
            cgroup_path(hybrid, Hierarchy::V1Cpu),
            Some("/user.slice/app")
        );

        let unified = "0::/system.slice/docker-abc.scope\n";
        assert_eq!(
            cgroup_path(unified, Hierarchy::V2),
            Some("/system.slice/docker-abc.scope")
        );
        assert_eq!(cgroup_path(unified, Hierarchy::V1Cpu), None);

        // `cpuacct` and `cpuset` are not `cpu`; a path may itself contain colons.
        let v1 = "3:cpuacct:/a\n2:cpuset:/b\n1:cpu:/with:colon\n";
        assert_eq!(cgroup_path(v1, Hierarchy::V1Cpu), Some("/with:colon"));
        assert_eq!(cgroup_path(v1, Hierarchy::V2), None);

        assert_eq!(cgroup_path("", Hierarchy::V2), None);
        assert_eq!(cgroup_path("garbage\n0:\n", Hierarchy::V2), None);
    }

    #[test]
    fn find_mount_reads_type_root_and_point() {
        let text = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
32 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:4 master:1 - cgroup2 cgroup2 rw
";
        assert_eq!(
            find_mount(text, Hierarchy::V2),
            Some(mount("/", "/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            find_mount(text, Hierarchy::V1Cpu),
            Some(mount("/docker/abc", "/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(find_mount("", Hierarchy::V2), None);
        assert_eq!(find_mount("1 2 - cgroup2 x y", Hierarchy::V2), None);
    }

    #[test]
    fn find_mount_undoes_octal_escapes() {
        let text = "41 31 0:38 /a\\040b /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_mount(text, Hierarchy::V2),
            Some(mount("/a b", "/mnt/my cgroup"))
        );
        assert_eq!(unescape_octal("tab\\011end\\134"), "tab\tend\\");
        assert_eq!(unescape_octal("\\134\\040"), "\\ ");
        assert_eq!(unescape_octal("\\9999"), "\\9999");
    }

    #[test]
    fn quota_dirs_walk_from_the_cgroup_up_to_the_mount_point() {
        let m = mount("/", "/sys/fs/cgroup");
        assert_eq!(
            quota_dirs(&m, "/a/b"),
            [
                PathBuf::from("/sys/fs/cgroup/a/b"),
                PathBuf::from("/sys/fs/cgroup/a"),
                PathBuf::from("/sys/fs/cgroup"),
            ]
        );
        assert_eq!(quota_dirs(&m, "/"), [PathBuf::from("/sys/fs/cgroup")]);
    }

    #[test]
    fn quota_dirs_take_the_path_relative_to_the_mount_root() {
        // A container without a cgroup namespace: the host's path, the container's mount.
        let m = mount("/docker/abc", "/sys/fs/cgroup");
        assert_eq!(
            quota_dirs(&m, "/docker/abc/worker"),
            [
                PathBuf::from("/sys/fs/cgroup/worker"),
                PathBuf::from("/sys/fs/cgroup"),
            ]
        );
        assert_eq!(
            quota_dirs(&m, "/docker/abc"),
            [PathBuf::from("/sys/fs/cgroup")]
        );
        // Outside the mounted part: only the mount point can say anything.
        assert_eq!(
            quota_dirs(&m, "/docker/abcdef"),
            [PathBuf::from("/sys/fs/cgroup")]
        );
        assert_eq!(quota_dirs(&m, "/other"), [PathBuf::from("/sys/fs/cgroup")]);
        let root = mount("/", "/sys/fs/cgroup");
        assert_eq!(
            quota_dirs(&root, "/../../x"),
            [PathBuf::from("/sys/fs/cgroup")]
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads the file system")]
    fn read_quota_reads_each_hierarchy_files() {
        let dir = std::env::temp_dir().join(format!("ferroproc-cpus-{}", std::process::id()));
        let inner = dir.join("inner");
        fs::create_dir_all(&inner).unwrap();
        fs::write(dir.join("cpu.max"), "250000 100000\n").unwrap();
        fs::write(inner.join("cpu.max"), "max 100000\n").unwrap();
        fs::write(inner.join("cpu.cfs_quota_us"), "150000\n").unwrap();
        fs::write(inner.join("cpu.cfs_period_us"), "100000\n").unwrap();

        assert_eq!(read_quota(&dir, Hierarchy::V2), Some(3));
        assert_eq!(read_quota(&inner, Hierarchy::V2), None);
        assert_eq!(read_quota(&inner, Hierarchy::V1Cpu), Some(2));
        assert_eq!(read_quota(&dir, Hierarchy::V1Cpu), None);

        let m = mount("/", dir.to_str().unwrap());
        let quotas: Vec<usize> = quota_dirs(&m, "/inner")
            .iter()
            .filter_map(|d| read_quota(d, Hierarchy::V2))
            .collect();
        assert_eq!(quotas, [3]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads the file system")]
    fn usable_cpus_is_within_the_affinity_mask() {
        let usable = usable_cpus();
        assert!(usable >= 1);
        assert!(usable <= affinity_cpus());
    }
}
