//! The probe driver: the STAMP sessions of measurement jobs
//! ([`netslice_dataplane::probe`]), run by one thread as a [`Device`] of the
//! common receive loop. What it "reads" are the test packets its senders
//! are due to send and the replies its reflectors owe; both enter the
//! pipeline as frames from the sliver interface of the probe's point, so
//! they take the slice's own path, queues and impairments. Replies and test
//! packets that reach a point were taken by the redirector with the time
//! they arrived; the driver hands them to the sessions.
//!
//! Timestamps are Unix time (STAMP's NTP format): the agent's monotonic
//! clock read against the system clock at every turn of the loop, so a
//! packet's time is where the forwarding thread saw it, not where the
//! driver got to it. The Error Estimate states what the kernel says of the
//! system clock ([`netslice_io::clock`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netslice_dataplane::probe::{INBOX, ProbePoint, UdpView, udp_frame};
use netslice_dataplane::{HEADROOM, stamp};
use netslice_model::api::{ProbeRole, TapReport};
use netslice_wire::stamp::{BASE_LEN, ErrorEstimate, ReflectorRepr, SenderRepr, UDP_PORT};

use crate::rx::{Arrival, BATCH, Device};
use crate::shared::Shared;

/// TTL of the packets the driver sends (RFC 8762 §4.3: a reflector sends 255).
const TTL: u8 = 255;
/// How often the sessions' results are published for reports.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How often the clock's error is read again.
const CLOCK_EVERY: Duration = Duration::from_secs(10);
/// Longest sleep while a probe runs: how often a reflector's inbox is
/// polled. A reply's timestamps are taken where the packets were, so the
/// reflector's dwell drops out of the delays measured; at 10,000 test
/// packets a second 2 ms is 20 waiting, far below the inbox's bound.
const ACTIVE_POLL: Duration = Duration::from_millis(2);
/// Sleep while no probe runs.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// A reflector's allowance: at most [`REFLECT_RATE`] answers a second, with a
/// burst of a tenth of that (a token bucket on the agent's clock).
#[derive(Debug)]
struct Budget {
    tokens: u64,
    at: u64,
}

/// Most test packets a reflector answers a second (the most a probe sends).
const REFLECT_RATE: u64 = 10_000;

impl Budget {
    fn new(now: u64) -> Budget {
        Budget { tokens: REFLECT_RATE / 10, at: now }
    }

    /// Whether one more answer fits at `now`.
    fn take(&mut self, now: u64) -> bool {
        let earned = now.saturating_sub(self.at) * REFLECT_RATE / 1_000_000_000;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(REFLECT_RATE / 10);
            self.at = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[derive(Debug)]
enum Session {
    Sender(stamp::Sender),
    Reflector {
        reflector: stamp::Reflector,
        answered: u64,
        /// Taken but not answered: malformed, or over [`REFLECT_RATE`].
        refused: u64,
        budget: Budget,
    },
}

/// The STAMP sessions of this host.
#[derive(Debug)]
pub(crate) struct ProbeDev {
    sessions: HashMap<u64, (Arc<ProbePoint>, Session)>,
    error: ErrorEstimate,
    error_read: Option<Instant>,
    published: Option<Instant>,
    next_due: Option<Instant>,
    active: bool,
    turn: usize,
}

impl ProbeDev {
    pub(crate) fn new() -> ProbeDev {
        ProbeDev {
            sessions: HashMap::new(),
            error: ErrorEstimate::default(),
            error_read: None,
            published: None,
            next_due: None,
            active: false,
            turn: 0,
        }
    }

    fn clock_error(&mut self) -> ErrorEstimate {
        if self.error_read.is_none_or(|t| t.elapsed() >= CLOCK_EVERY) {
            self.error_read = Some(Instant::now());
            self.error = match netslice_io::clock::clock_error() {
                Ok(e) => ErrorEstimate::at_least(e.seconds, e.synchronized),
                // Unknown: say so with the largest estimate, unsynchronized.
                Err(_) => ErrorEstimate { synchronized: false, ptp: false, scale: 63, multiplier: 255 },
            };
        }
        self.error
    }

    fn publish(&mut self, shared: &Shared) {
        let mut out = BTreeMap::new();
        for (job, (point, s)) in &self.sessions {
            let report = match s {
                Session::Sender(s) => TapReport {
                    job: *job,
                    stamp: Some(s.results()),
                    probe_dropped: point.overflowed(),
                    ..TapReport::default()
                },
                Session::Reflector { answered, refused, .. } => TapReport {
                    job: *job,
                    reflected: *answered,
                    probe_dropped: point.overflowed() + refused,
                    ..TapReport::default()
                },
            };
            out.insert(*job, report);
        }
        *shared.probe_reports.lock().unwrap_or_else(|e| e.into_inner()) = out;
    }
}

/// Unix nanoseconds of `t` on the agent's clock, given both clocks' `now`.
fn unix_of(t: u64, now: u64, unix_now: u64) -> u64 {
    if t <= now { unix_now.saturating_sub(now - t) } else { unix_now.saturating_add(t - now) }
}

impl Device for ProbeDev {
    fn recv(&mut self, shared: &Shared, bufs: &mut Vec<Vec<u8>>, arrivals: &mut Vec<Arrival>) -> usize {
        let plane = shared.plane.load();
        let probes = plane.pipe.tables.probes();
        let had = !self.sessions.is_empty();
        self.sessions.retain(|job, (p, _)| probes.get(job).is_some_and(|q| Arc::ptr_eq(p, q)));
        self.active = !probes.is_empty();
        if !self.active {
            if had {
                self.publish(shared);
            }
            return 0;
        }
        let error = self.clock_error();
        let now = shared.clock.now();
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        let unix = |t: u64| unix_of(t, now, unix_now);
        for (job, point) in probes {
            self.sessions.entry(*job).or_insert_with(|| {
                let s = match point.config.role {
                    ProbeRole::Sender { ssid, rate, .. } => {
                        Session::Sender(stamp::Sender::new(ssid, rate, unix(point.start), unix(point.end), error))
                    }
                    ProbeRole::Reflector { .. } => Session::Reflector {
                        reflector: stamp::Reflector::default(),
                        answered: 0,
                        refused: 0,
                        budget: Budget::new(now),
                    },
                };
                (point.clone(), s)
            });
        }
        // Senders first (their rates are bounded when jobs are made), then
        // the reflectors, a fair share of what is left each, starting with a
        // different one each turn: a sliver flooding its reflector delays no
        // other session.
        let mut jobs: Vec<u64> = self.sessions.keys().copied().collect();
        jobs.sort_unstable();
        self.turn = self.turn.wrapping_add(1);
        let n = jobs.len();
        jobs.rotate_left(self.turn % n.max(1));
        jobs.sort_by_key(|j| !matches!(self.sessions[j].1, Session::Sender(_)));
        let reflectors = jobs.iter().filter(|j| !matches!(self.sessions[*j].1, Session::Sender(_))).count();
        let mut used = 0usize;
        let mut next_due: Option<u64> = None;
        for job in jobs {
            let Some((point, session)) = self.sessions.get_mut(&job) else { continue };
            let c = point.config;
            match (session, c.role) {
                (Session::Sender(s), ProbeRole::Sender { src_port, peer_mac, peer_ip, .. }) => {
                    s.set_error(error);
                    for t in point.drain(INBOX) {
                        let Some(v) = UdpView::parse(&t.frame) else { continue };
                        if !UdpView::checksums_ok(&t.frame) {
                            continue;
                        }
                        if let Ok(r) = ReflectorRepr::parse(&t.frame[v.payload.clone()]) {
                            s.on_reply(unix(t.at), &r);
                        }
                    }
                    while used < BATCH {
                        let Some(test) = s.poll_transmit(unix_now) else { break };
                        let range = udp_frame(
                            &mut bufs[used],
                            HEADROOM,
                            (c.mac, c.ip, src_port),
                            (peer_mac, peer_ip, UDP_PORT),
                            TTL,
                            test.buffer_len(),
                            |p| test.emit(p),
                        );
                        arrivals.push(Arrival::port(used, range, c.port));
                        used += 1;
                    }
                    if let Some(due) = s.poll_timeout() {
                        let wait = due.saturating_sub(unix_now);
                        next_due = Some(next_due.map_or(wait, |d| d.min(wait)));
                    }
                }
                (Session::Reflector { reflector, answered, refused, budget }, _) => {
                    let share = ((BATCH - used) / reflectors.max(1)).max(1).min(BATCH - used);
                    for t in point.drain(share) {
                        let Some(v) = UdpView::parse(&t.frame) else { continue };
                        if !UdpView::checksums_ok(&t.frame) || !budget.take(now) {
                            *refused += 1;
                            continue;
                        }
                        let payload = &t.frame[v.payload.clone()];
                        // TLVs that do not parse are left out of the answer (RFC 8972
                        // lets a reflector answer the base packet).
                        let test = match SenderRepr::parse(payload) {
                            Ok(t) => t,
                            Err(_) => match payload.get(..BASE_LEN).map(SenderRepr::parse) {
                                Some(Ok(t)) => t,
                                _ => {
                                    *refused += 1;
                                    continue;
                                }
                            },
                        };
                        let rx = unix(t.at);
                        // Sent now: never before it arrived.
                        let tx = unix(shared.clock.now()).max(rx);
                        let reply = reflector.reflect((v.src_ip, v.src_port), &test, rx, v.ttl, tx, error);
                        let range = udp_frame(
                            &mut bufs[used],
                            HEADROOM,
                            (c.mac, c.ip, UDP_PORT),
                            (v.src_mac, v.src_ip, v.src_port),
                            TTL,
                            reply.buffer_len(),
                            |p| reply.emit(p),
                        );
                        arrivals.push(Arrival::port(used, range, c.port));
                        used += 1;
                        *answered += 1;
                    }
                }
                _ => {}
            }
        }
        self.next_due = next_due.map(|d| Instant::now() + Duration::from_nanos(d));
        if self.published.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY) {
            self.published = Some(Instant::now());
            self.publish(shared);
        }
        used
    }

    fn wait(&mut self, _busy: Instant) {
        let most = if self.active { ACTIVE_POLL } else { IDLE_POLL };
        let d = self.next_due.map_or(most, |t| t.saturating_duration_since(Instant::now()).min(most));
        std::thread::sleep(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reflectors_budget_allows_its_rate_and_a_tenth_of_a_second_of_burst() {
        let s = 1_000_000_000;
        let mut b = Budget::new(0);
        assert_eq!((0..5000).filter(|_| b.take(0)).count(), 1000, "the burst");
        assert!(!b.take(50_000), "half a token earned is none");
        assert_eq!((0..5000).filter(|_| b.take(s / 20)).count(), 500, "50 ms earns 500");
        assert_eq!((0..50_000).filter(|_| b.take(10 * s)).count(), 1000, "idle time earns no more than the burst");
    }

    #[test]
    fn times_on_the_agents_clock_map_to_unix_time_both_ways() {
        assert_eq!(unix_of(90, 100, 1_000), 990);
        assert_eq!(unix_of(110, 100, 1_000), 1_010);
        assert_eq!(unix_of(0, 100, 50), 0);
    }
}
