//! Processes: signals, liveness, and detached daemons.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Sends `signal` to `pid`; `Ok(false)` if no such process.
pub fn signal(pid: i32, signal: i32) -> Result<bool> {
    if pid <= 0 {
        return Ok(false);
    }
    // SAFETY: kill(2) has no memory-safety preconditions; pid > 0 targets one process.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(Error::os(format!("signalling process {pid}"), e))
    }
}

/// Whether `pid` is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // The state follows the parenthesised command name.
            let state = s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// When `pid` started, in clock ticks since boot (`/proc/PID/stat` field 22):
/// with the PID, an identity of one process that a reused PID does not share.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state).
    let rest = s.rsplit_once(')')?.1;
    rest.split_whitespace().nth(22 - 3).and_then(|f| f.parse().ok())
}

/// This executable, also after it was replaced on disk (a rebuild): Linux
/// then names the old file `PATH (deleted)`, and the new one is at PATH.
pub fn current_exe() -> std::io::Result<std::path::PathBuf> {
    let p = std::env::current_exe()?;
    let s = p.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(live) => std::path::PathBuf::from(live),
        None => p,
    })
}

/// The command line of `pid`, NUL separators replaced by spaces.
pub fn cmdline(pid: i32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
}

/// Starts `cmd` detached from this process (new session, stdin from /dev/null,
/// stdout and stderr appended to `log`); returns its PID.
pub fn spawn_daemon(cmd: Command, log: &std::path::Path) -> Result<u32> {
    Ok(spawn_logged(cmd, log)?.id())
}

/// Like [`spawn_daemon`], but keeps the child handle, for a parent that
/// supervises it (waits for it and sees why it exited).
pub fn spawn_logged(mut cmd: Command, log: &std::path::Path) -> Result<std::process::Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::os(format!("opening log {}", log.display()), e))?;
    let err = out.try_clone().map_err(|e| Error::os("duplicating log fd", e))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: the closure only calls setsid(2), which is async-signal-safe, between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| Error::os(format!("starting {:?}", cmd.get_program()), e))
}

/// Restores the default action of SIGPIPE (terminate quietly), which Rust
/// programs ignore. For commands whose output goes to a pipe that may close
/// early (`netslice types | head -1`): without it, the next write fails with
/// EPIPE and `println!` panics. Daemons keep ignoring SIGPIPE (a peer that
/// goes away must not kill them).
pub fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler; it only changes this
    // process's disposition for one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Why a child exited, for people: `exit code 1`, `killed by signal 9 (SIGKILL)`.
pub fn exit_reason(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGKILL => "SIGKILL",
                libc::SIGTERM => "SIGTERM",
                libc::SIGSEGV => "SIGSEGV",
                libc::SIGABRT => "SIGABRT",
                libc::SIGINT => "SIGINT",
                libc::SIGBUS => "SIGBUS",
                libc::SIGPIPE => "SIGPIPE",
                libc::SIGHUP => "SIGHUP",
                _ => "",
            };
            if name.is_empty() { format!("killed by signal {sig}") } else { format!("killed by signal {sig} ({name})") }
        }
        (None, None) => "exited".into(),
    }
}

/// Reaps any exited children of this process without blocking (daemons started
/// by [`spawn_daemon`] are children until this process exits).
pub fn reap_children() {
    loop {
        // SAFETY: waitpid with WNOHANG and a null status pointer is always sound.
        let rc = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if rc <= 0 {
            break;
        }
    }
}

/// Replaces this process with `prog args` after moving it into network namespace
/// `netns` (and, if given, the sliver cgroup `cgroup`). Returns only on failure.
pub fn exec_in(netns: &str, cgroup: Option<&str>, prog: &str, args: &[String]) -> Error {
    if let Err(e) = crate::netns::enter(netns) {
        return e;
    }
    if let Some(cg) = cgroup
        && let Err(e) = crate::cgroup::add_pid(cg, std::process::id())
    {
        return e;
    }
    let e = Command::new(prog).args(args).exec();
    Error::os(format!("running {prog}"), e)
}

/// SIGKILL.
pub const SIGKILL: i32 = libc::SIGKILL;
/// SIGTERM.
pub const SIGTERM: i32 = libc::SIGTERM;

/// Prepares `cmd` to start inside network namespace `netns` (the namespace is
/// opened now, entered in the child between fork and exec).
pub fn in_netns(cmd: &mut Command, netns: &str) -> Result<()> {
    use std::os::fd::{AsRawFd, OwnedFd};
    let f = std::fs::File::open(crate::netns::path(netns))
        .map_err(|e| Error::os(format!("opening network namespace {netns}"), e))?;
    let fd: OwnedFd = f.into();
    // SAFETY: the closure calls only setns(2), which is async-signal-safe, on a
    // descriptor opened before fork and kept alive by the closure itself.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Whether this process runs as root (effective UID 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The gate of every test that needs root (namespaces, TAP, raw sockets, XDP):
/// true as root; otherwise the test fails with a message saying how to run it,
/// unless `NETSLICE_SKIP_E2E=1` is set, in which case it returns false and the
/// test returns early, saying so. CI runs the tests as root.
pub fn need_root_for_tests() -> bool {
    // The effective UID, from /proc (no libc call needed).
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2).map(String::from))
        })
        .unwrap_or_default();
    if uid == "0" {
        return true;
    }
    if std::env::var("NETSLICE_SKIP_E2E").as_deref() == Ok("1") {
        eprintln!("SKIPPED: this test needs root (NETSLICE_SKIP_E2E=1 is set)");
        return false;
    }
    panic!("this test needs root: run scripts/test.sh as root, or set NETSLICE_SKIP_E2E=1 to skip it");
}
