//! cgroup v1 `cpu` and `memory` limits for slivers (the machines netslice targets
//! mount v1 controllers; the v2 `unified` hierarchy beside them has no controllers).
//!
//! Each sliver gets `/sys/fs/cgroup/{cpu,memory}/netslice/<name>`, and where the
//! v1 `cpuset` controller is mounted also `/sys/fs/cgroup/cpuset/netslice/<name>`
//! (the CPUs its processes may run on); processes started in the sliver are
//! added to all of them.

use std::path::PathBuf;

use crate::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";
const CFS_PERIOD_US: u64 = 100_000;

fn dir(controller: &str, name: &str) -> PathBuf {
    PathBuf::from(ROOT).join(controller).join("netslice").join(name)
}

/// Whether the v1 cpu and memory controllers are mounted.
pub fn available() -> bool {
    PathBuf::from(ROOT).join("cpu/cpu.cfs_quota_us").exists()
        && PathBuf::from(ROOT).join("memory/memory.limit_in_bytes").exists()
}

fn write(path: PathBuf, value: &str) -> Result<()> {
    std::fs::write(&path, value).map_err(|e| Error::os(format!("writing {value} to {}", path.display()), e))
}

/// Creates (or updates) the cgroups of a sliver: `cpu` cores as a CFS quota and a
/// memory limit in bytes.
pub fn ensure(name: &str, cpu: f64, memory_bytes: u64) -> Result<()> {
    for c in ["cpu", "memory"] {
        let d = dir(c, name);
        std::fs::create_dir_all(&d).map_err(|e| Error::os(format!("creating {}", d.display()), e))?;
    }
    let quota = ((cpu * CFS_PERIOD_US as f64).round() as u64).max(1000);
    write(dir("cpu", name).join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
    write(dir("cpu", name).join("cpu.cfs_quota_us"), &quota.to_string())?;
    write(dir("memory", name).join("memory.limit_in_bytes"), &memory_bytes.to_string())?;
    Ok(())
}

/// Whether the v1 cpuset controller is mounted.
pub fn cpuset_available() -> bool {
    PathBuf::from(ROOT).join("cpuset/cpuset.cpus").exists()
}

fn read_trim(path: PathBuf) -> Result<String> {
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::os(format!("reading {}", path.display()), e))
}

/// Confines the sliver's processes (present and future) to `cpus`, or lets
/// them use every CPU netslice's parent cpuset has (`None`). Does nothing when
/// the cpuset controller is not mounted. A v1 cpuset starts with no CPUs and
/// no memory nodes, so the parent `netslice` cpuset copies the root's first.
pub fn set_cpus(name: &str, cpus: Option<&[usize]>) -> Result<()> {
    if !cpuset_available() {
        return Ok(());
    }
    let root = PathBuf::from(ROOT).join("cpuset");
    let parent = root.join("netslice");
    std::fs::create_dir_all(&parent).map_err(|e| Error::os(format!("creating {}", parent.display()), e))?;
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if read_trim(parent.join(f))?.is_empty() {
            write(parent.join(f), &read_trim(root.join(f))?)?;
        }
    }
    let d = dir("cpuset", name);
    std::fs::create_dir_all(&d).map_err(|e| Error::os(format!("creating {}", d.display()), e))?;
    write(d.join("cpuset.mems"), &read_trim(parent.join("cpuset.mems"))?)?;
    let list = match cpus {
        Some(c) if !c.is_empty() => c.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
        _ => read_trim(parent.join("cpuset.cpus"))?,
    };
    write(d.join("cpuset.cpus"), &list)
}

/// Adds a process to the sliver's cgroups.
pub fn add_pid(name: &str, pid: u32) -> Result<()> {
    for c in ["cpu", "memory"] {
        write(dir(c, name).join("cgroup.procs"), &pid.to_string())?;
    }
    let cs = dir("cpuset", name);
    if cs.exists() {
        write(cs.join("cgroup.procs"), &pid.to_string())?;
    }
    Ok(())
}

/// PIDs in the sliver's cpu cgroup.
pub fn pids(name: &str) -> Vec<i32> {
    std::fs::read_to_string(dir("cpu", name).join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Removes the sliver's cgroups (they must be empty of processes).
pub fn remove(name: &str) -> Result<()> {
    for c in ["cpu", "memory", "cpuset"] {
        let d = dir(c, name);
        if d.exists() {
            std::fs::remove_dir(&d).map_err(|e| Error::os(format!("removing {}", d.display()), e))?;
        }
    }
    Ok(())
}
