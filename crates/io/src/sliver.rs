//! What is left of a sliver when its agent is gone: its processes (in its
//! namespace and its cgroups) and its cgroups. The agents tear slivers down
//! with these; so does `testbed down` after a crash.

use std::time::Duration;

use crate::{cgroup, netns, process};

/// Kills every process in a sliver (its namespace and its cgroup), by PID.
pub fn kill_processes(ns: &str, cgroup: bool) {
    for _ in 0..20 {
        let mut pids = if netns::exists(ns) { netns::pids(ns) } else { Vec::new() };
        if cgroup {
            pids.extend(cgroup::pids(ns));
        }
        pids.retain(|p| *p != std::process::id() as i32);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = process::signal(p, process::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Removes a sliver's cgroups, waiting for killed processes to leave them.
pub fn remove_cgroup(ns: &str) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..40 {
        match cgroup::remove(ns) {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(last)
}
