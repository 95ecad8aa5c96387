//! The local testbed's supervisor: what systemd does for the daemons on real
//! hosts. `testbed up` starts one `netslice testbed supervise DIR` per
//! testbed; it starts the manager and every agent as its children, and when
//! one exits without being asked to, it starts it again: after 100 ms the
//! first time, backing off (doubling, at most 5 s) while a daemon keeps dying
//! within 10 s of its start. It records every daemon's PID, starts, restarts
//! and last exit reason in `daemons.json` (written atomically), which
//! `testbed status` shows, and it takes `restart` and `stop` commands on the
//! Unix socket `supervisor.sock` in the testbed directory.
//!
//! A supervisor that is itself killed leaves its daemons running (they are
//! in sessions of their own); the next `testbed restart` starts a new one,
//! which adopts the daemons still alive (by PID, checked to be this
//! testbed's) and watches them by polling until they exit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use netslice_io::process;
use serde::{Deserialize, Serialize};

use crate::state;
use crate::state::{Daemons, Proc, TestbedState, now_secs};

/// The supervisor's control socket, in the testbed directory.
pub const SOCKET: &str = "supervisor.sock";
/// How often children are looked at.
const TICK: Duration = Duration::from_millis(50);
/// Delay before the first restart of a daemon that exited.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Longest delay between restarts of a daemon that keeps exiting.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A daemon that ran this long is healthy again: its next restart is quick.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// The program daemons are started from, resolved once when the supervisor
/// starts (a rebuild replaces the file; the path stays).
static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn exe() -> Result<&'static PathBuf> {
    if let Some(e) = EXE.get() {
        return Ok(e);
    }
    let e = process::current_exe().context("locating the netslice executable")?;
    Ok(EXE.get_or_init(|| e))
}

/// One supervised daemon.
#[derive(Debug)]
struct Slot {
    /// The daemon; `proc.args` are those of the running process (by which
    /// `is_ours` recognises it).
    proc: Proc,
    /// Arguments for its next start, where they differ (the manager listens
    /// where its first start bound).
    next_args: Option<Vec<String>>,
    /// Our child, or `None` for a daemon adopted from an earlier supervisor
    /// (watched by polling its PID).
    child: Option<Child>,
    running: bool,
    started: Instant,
    delay: Duration,
    restart_at: Option<Instant>,
}

impl Slot {
    fn new(proc: Proc) -> Slot {
        Slot {
            proc,
            next_args: None,
            child: None,
            running: false,
            started: Instant::now(),
            delay: FIRST_DELAY,
            restart_at: None,
        }
    }

    /// Starts (or restarts) the daemon.
    fn start(&mut self, dir: &Path) -> Result<()> {
        if let Some(a) = self.next_args.take() {
            self.proc.args = a;
        }
        let mut cmd = std::process::Command::new(exe()?);
        cmd.args(&self.proc.args).current_dir(dir);
        let child = process::spawn_logged(cmd, &self.proc.log)?;
        self.proc.pid = child.id() as i32;
        self.proc.start_ticks = process::start_time(self.proc.pid).unwrap_or(0);
        self.proc.started = now_secs();
        self.proc.starts += 1;
        self.child = Some(child);
        self.running = true;
        self.started = Instant::now();
        self.restart_at = None;
        Ok(())
    }

    /// Whether it exited since the last look, and why.
    fn exited(&mut self, dir: &Path) -> Option<String> {
        if !self.running {
            return None;
        }
        match &mut self.child {
            Some(c) => match c.try_wait() {
                Ok(Some(status)) => Some(process::exit_reason(status)),
                Ok(None) => None,
                Err(e) => Some(format!("lost track of it: {e}")),
            },
            None => (!state::is_ours(&self.proc, dir)).then(|| "exited (adopted: reason unknown)".to_string()),
        }
    }

    /// Asks it to stop (SIGTERM).
    fn terminate(&mut self, dir: &Path) {
        if self.running && (self.child.is_some() || state::is_ours(&self.proc, dir)) {
            let _ = process::signal(self.proc.pid, process::SIGTERM);
        }
    }

    /// Waits for it to exit until `deadline`, then kills it.
    fn reap(&mut self, dir: &Path, deadline: Instant) {
        if !self.running {
            return;
        }
        while Instant::now() < deadline && self.exited(dir).is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.exited(dir).is_none() {
            if self.child.is_some() || state::is_ours(&self.proc, dir) {
                let _ = process::signal(self.proc.pid, process::SIGKILL);
            }
            if let Some(c) = &mut self.child {
                let _ = c.wait();
            }
        }
        self.running = false;
        self.child = None;
    }

    /// Stops it: SIGTERM, then SIGKILL after 3 s.
    fn stop(&mut self, dir: &Path) {
        self.terminate(dir);
        self.reap(dir, Instant::now() + Duration::from_secs(3));
    }
}

/// The supervisor's state.
struct Supervisor {
    dir: PathBuf,
    st: TestbedState,
    manager: Slot,
    agents: BTreeMap<String, Slot>,
    manager_url: String,
}

impl Supervisor {
    fn daemons(&self) -> Daemons {
        Daemons {
            supervisor: std::process::id() as i32,
            manager_url: self.manager_url.clone(),
            manager: Some(self.manager.proc.clone()),
            agents: self.agents.iter().map(|(h, s)| (h.clone(), s.proc.clone())).collect(),
        }
    }

    fn save(&self) {
        if let Err(e) = self.daemons().save(&self.dir) {
            tracing::warn!("{e:#}");
        }
    }

    fn slot(&mut self, which: &str) -> Option<&mut Slot> {
        if which == "manager" { Some(&mut self.manager) } else { self.agents.get_mut(which) }
    }

    /// Starts the manager the first time and learns its address.
    fn first_manager_start(&mut self) -> Result<()> {
        let addr_file = self.dir.join("manager.addr");
        let _ = std::fs::remove_file(&addr_file);
        self.manager.start(&self.dir)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.trim().is_empty()
            {
                let addr = a.trim().to_string();
                self.manager_url = format!("https://{addr}");
                // Restarts listen where the first start did: agents and clients keep the URL.
                self.manager.next_args = Some(state::manager_args(&self.st, &addr));
                return Ok(());
            }
            if let Some(why) = self.manager.exited(&self.dir) {
                bail!("the manager exited at start ({why}); its log ({}) says why", self.manager.proc.log.display());
            }
            if Instant::now() > deadline {
                bail!("the manager did not start listening within 15s; see {}", self.manager.proc.log.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Looks at every daemon: records exits, restarts those due.
    fn tick(&mut self) {
        let dir = self.dir.clone();
        let mut changed = false;
        let names: Vec<String> = std::iter::once("manager".to_string()).chain(self.agents.keys().cloned()).collect();
        for name in names {
            let slot = self.slot(&name).expect("known daemon");
            if let Some(why) = slot.exited(&dir) {
                slot.running = false;
                slot.child = None;
                slot.proc.last_exit = Some(why.clone());
                slot.proc.last_exit_at = Some(now_secs());
                slot.delay = if slot.started.elapsed() >= HEALTHY_AFTER {
                    FIRST_DELAY
                } else if slot.proc.restarts == 0 {
                    slot.delay
                } else {
                    (slot.delay * 2).min(MAX_DELAY)
                };
                slot.restart_at = Some(Instant::now() + slot.delay);
                tracing::warn!("{name} (pid {}) {why}; restarting in {:?}", slot.proc.pid, slot.delay);
                changed = true;
            }
            if let Some(at) = slot.restart_at
                && Instant::now() >= at
            {
                match slot.start(&dir) {
                    Ok(()) => {
                        slot.proc.restarts += 1;
                        tracing::info!("{name} restarted (pid {})", slot.proc.pid);
                    }
                    Err(e) => {
                        slot.delay = (slot.delay * 2).min(MAX_DELAY);
                        slot.restart_at = Some(Instant::now() + slot.delay);
                        tracing::warn!("{name}: {e:#}; trying again in {:?}", slot.delay);
                    }
                }
                changed = true;
            }
        }
        if changed {
            self.save();
        }
    }

    /// A restart someone asked for (not counted as a crash).
    fn restart(&mut self, which: &str) -> Result<String> {
        let dir = self.dir.clone();
        let slot = self.slot(which).ok_or_else(|| anyhow!("no daemon {which:?}"))?;
        slot.stop(&dir);
        slot.proc.last_exit = Some("stopped by `testbed restart`".into());
        slot.proc.last_exit_at = Some(now_secs());
        slot.delay = FIRST_DELAY;
        if let Err(e) = slot.start(&dir) {
            // Not left down: the supervisor keeps trying, as after a crash.
            slot.restart_at = Some(Instant::now() + slot.delay);
            self.save();
            return Err(e);
        }
        let pid = slot.proc.pid;
        self.save();
        Ok(format!("{which} restarted (pid {pid})"))
    }

    /// Stops the agents (all at once), then the manager.
    fn stop_all(&mut self) {
        let dir = self.dir.clone();
        for s in self.agents.values_mut() {
            s.restart_at = None;
            s.terminate(&dir);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for s in self.agents.values_mut() {
            s.reap(&dir, deadline);
        }
        self.manager.restart_at = None;
        self.manager.stop(&dir);
        self.save();
    }
}

/// A request on the control socket, one line of JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Restart `manager` or the agent of a host.
    Restart {
        /// `manager` or a host name.
        daemon: String,
    },
    /// Stop every daemon and exit.
    Stop,
}

/// The answer, one line of JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    /// Whether it was done.
    pub ok: bool,
    /// What happened.
    pub message: String,
}

/// Sends a request to the supervisor of the testbed in `dir`.
pub fn request(dir: &Path, req: &Request) -> Result<Answer> {
    use std::io::{BufRead, BufReader, Write};
    let path = dir.join(SOCKET);
    let mut s = std::os::unix::net::UnixStream::connect(&path)
        .with_context(|| format!("connecting to the testbed's supervisor at {}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    writeln!(s, "{}", serde_json::to_string(req)?)?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).context("reading the supervisor's answer")?;
    serde_json::from_str(&line).with_context(|| format!("unreadable answer from the supervisor: {line:?}"))
}

/// `netslice testbed supervise DIR`: supervises the testbed in `dir` until
/// SIGTERM, SIGINT or a `stop` request.
pub fn run(dir: &Path) -> Result<()> {
    let dir = std::fs::canonicalize(dir).with_context(|| format!("testbed directory {}", dir.display()))?;
    let st = state::load_state(&dir).ok_or_else(|| anyhow!("no testbed state in {}", dir.display()))?;
    let old = Daemons::load(&dir).unwrap_or_default();
    if old.supervisor > 0
        && old.supervisor != std::process::id() as i32
        && process::alive(old.supervisor)
        && process::cmdline(old.supervisor)
            .is_some_and(|c| c.contains("supervise") && c.contains(&*dir.to_string_lossy()))
    {
        bail!("testbed {} is already supervised by pid {}", st.name, old.supervisor);
    }
    let adopt = |old: Option<&Proc>, fresh: Proc| -> Slot {
        match old {
            Some(p) if state::is_ours(p, &dir) => {
                tracing::info!("adopting {} (pid {})", p.args.first().map(String::as_str).unwrap_or("daemon"), p.pid);
                Slot { running: true, next_args: Some(fresh.args), ..Slot::new(p.clone()) }
            }
            Some(p) => Slot::new(Proc { args: fresh.args, log: fresh.log, ..p.clone() }),
            None => Slot::new(fresh),
        }
    };
    // Signals first: a `down` during start-up must find every daemon started.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    exe()?;
    let listen = old.manager_url.strip_prefix("https://").unwrap_or("127.0.0.1:0").to_string();
    let manager =
        adopt(old.manager.as_ref(), state::new_proc(state::manager_args(&st, &listen), dir.join("manager.log")));
    let mut sup = Supervisor {
        dir: dir.clone(),
        manager,
        agents: BTreeMap::new(),
        manager_url: old.manager_url.clone(),
        st: st.clone(),
    };
    // Agents adopted or not yet started are recorded from the start.
    for h in &st.hosts {
        let fresh = state::new_proc(state::agent_args(&st, h), dir.join("agents").join(format!("{h}.log")));
        sup.agents.insert(h.clone(), adopt(old.agents.get(h), fresh));
    }
    sup.save();
    let sock = dir.join(SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener =
        std::os::unix::net::UnixListener::bind(&sock).with_context(|| format!("binding {}", sock.display()))?;
    listener.set_nonblocking(true)?;
    if let Err(e) = start_daemons(&mut sup, &stop) {
        sup.stop_all();
        let _ = std::fs::remove_file(&sock);
        return Err(e);
    }
    tracing::info!("supervising testbed {}: manager and {} agents", sup.st.name, sup.agents.len());

    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        sup.tick();
        match listener.accept() {
            Ok((conn, _)) => {
                if serve_request(&mut sup, conn) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(e) => {
                tracing::warn!("control socket: {e}");
                std::thread::sleep(TICK);
            }
        }
    }
    tracing::info!("stopping the daemons of testbed {}", sup.st.name);
    sup.stop_all();
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

/// Starts the manager (learning its address the first time) and the agents
/// not adopted, saving after each start.
fn start_daemons(sup: &mut Supervisor, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
    let dir = sup.dir.clone();
    if !sup.manager.running {
        if sup.manager_url.is_empty() {
            sup.first_manager_start()?;
        } else {
            sup.manager.start(&dir)?;
        }
        sup.save();
    }
    sup.st.manager_url = sup.manager_url.clone();
    let hosts: Vec<String> = sup.agents.keys().cloned().collect();
    for h in hosts {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            bail!("stopped while starting");
        }
        std::fs::create_dir_all(dir.join("agents").join(&h))?;
        let args = state::agent_args(&sup.st, &h);
        let slot = sup.agents.get_mut(&h).expect("known host");
        slot.next_args = Some(args);
        if !slot.running {
            slot.start(&dir)?;
        }
        sup.save();
    }
    Ok(())
}

/// Answers one control request; true if it was `stop`.
fn serve_request(sup: &mut Supervisor, conn: std::os::unix::net::UnixStream) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let _ = BufReader::new(std::io::Read::take(&conn, 4096)).read_line(&mut line);
    let (answer, stop) = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Restart { daemon }) => match sup.restart(&daemon) {
            Ok(m) => (Answer { ok: true, message: m }, false),
            Err(e) => (Answer { ok: false, message: format!("{e:#}") }, false),
        },
        Ok(Request::Stop) => (Answer { ok: true, message: "stopping".into() }, true),
        Err(e) => (Answer { ok: false, message: format!("bad request: {e}") }, false),
    };
    let mut w = &conn;
    let _ = writeln!(w, "{}", serde_json::to_string(&answer).unwrap_or_default());
    stop
}
