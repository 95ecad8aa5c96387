//! CPU affinity of the calling thread (`sched_setaffinity`/`sched_getaffinity`).

use crate::{Error, Result};

/// Most CPUs a set handled here may name (the size of `cpu_set_t`).
pub const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

/// The CPUs the calling thread may run on, ascending.
pub fn allowed() -> Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the kernel writes at most
    // size_of::<cpu_set_t>() bytes into the set we own.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(Error::Os { what: "sched_getaffinity".into(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: CPU_ISSET reads the set we own, with an index below CPU_SETSIZE.
    Ok((0..MAX_CPUS).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Restricts the calling thread to `cpus`. An empty list or a CPU at or
/// above [`MAX_CPUS`] is refused; CPUs the machine lacks make the kernel
/// refuse (EINVAL) when none of them exists.
pub fn pin_current_thread(cpus: &[usize]) -> Result<()> {
    if cpus.is_empty() {
        return Err(Error::Os {
            what: "pinning a thread to no CPU".into(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    // SAFETY: as in `allowed`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= MAX_CPUS {
            return Err(Error::Os {
                what: format!("pinning a thread to CPU {c}"),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            });
        }
        // SAFETY: c < CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; the set is initialised above.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(Error::Os {
            what: format!("sched_setaffinity to CPUs {cpus:?}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// What this machine is, for telling whether a stored calibration was
/// measured on it: CPU model, CPUs this process may use, kernel, netslice
/// version and build (a debug build forwards several times slower).
pub fn machine_id() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cpus = allowed().map(|c| c.len()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let build = if cfg!(debug_assertions) { " (debug build)" } else { "" };
    format!("{model}; {cpus} cpus; linux {}; netslice {}{build}", kernel.trim(), env!("CARGO_PKG_VERSION"))
}

/// Time CPU `cpu` has been busy since boot, nanoseconds (`/proc/stat`:
/// user, nice, system, interrupts, softirqs and steal, in clock ticks).
pub fn busy_ns(cpu: usize) -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let tag = format!("cpu{cpu} ");
    let line = stat.lines().find(|l| l.starts_with(&tag))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let busy: u64 = v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(busy * 1_000_000_000 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_can_be_pinned_and_reads_its_set_back() {
        let all = allowed().unwrap();
        assert!(!all.is_empty());
        let last = *all.last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(&[last]).unwrap();
            assert_eq!(allowed().unwrap(), vec![last]);
        })
        .join()
        .unwrap();
        // The spawning thread kept its set.
        assert_eq!(allowed().unwrap(), all);
    }

    #[test]
    fn impossible_sets_are_refused() {
        assert!(pin_current_thread(&[]).is_err());
        assert!(pin_current_thread(&[MAX_CPUS]).is_err());
        let past = (MAX_CPUS - 1).max(allowed().unwrap().last().unwrap() + 1);
        std::thread::spawn(move || assert!(pin_current_thread(&[past]).is_err())).join().unwrap();
    }
}
