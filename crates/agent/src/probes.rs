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

use netslice_dataplane::probe::{ProbePoint, UdpView, udp_frame};
use netslice_dataplane::{HEADROOM, stamp};
use netslice_model::api::{ProbeRole, TapReport};
use netslice_wire::stamp::{ErrorEstimate, ReflectorRepr, SenderRepr, UDP_PORT};

use crate::rx::{Arrival, BATCH, Device};
use crate::shared::Shared;

/// TTL of the packets the driver sends (RFC 8762 §4.3: a reflector sends 255).
const TTL: u8 = 255;
/// How often the sessions' results are published for reports.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How often the clock's error is read again.
const CLOCK_EVERY: Duration = Duration::from_secs(10);
/// Longest sleep while a probe runs: how often a reflector's inbox is
/// polled. A reply's timestamps are taken where the packets were, so the
/// reflector's dwell drops out of the delays measured; at 10,000 test
/// packets a second 2 ms is 20 waiting, far below the inbox's bound.
const ACTIVE_POLL: Duration = Duration::from_millis(2);
/// Sleep while no probe runs.
const IDLE_POLL: Duration = Duration::from_millis(50);

#[derive(Debug)]
enum Session {
    Sender(stamp::Sender),
    Reflector { reflector: stamp::Reflector, answered: u64 },
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
        for (job, (_, s)) in &self.sessions {
            let report = match s {
                Session::Sender(s) => TapReport { job: *job, stamp: Some(s.results()), ..TapReport::default() },
                Session::Reflector { answered, .. } => {
                    TapReport { job: *job, reflected: *answered, ..TapReport::default() }
                }
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
        let mut used = 0usize;
        let mut next_due: Option<u64> = None;
        for (job, point) in probes {
            let (_, session) = self.sessions.entry(*job).or_insert_with(|| {
                let s = match point.config.role {
                    ProbeRole::Sender { ssid, rate, .. } => {
                        Session::Sender(stamp::Sender::new(ssid, rate, unix(point.start), unix(point.end), error))
                    }
                    ProbeRole::Reflector => Session::Reflector { reflector: stamp::Reflector::default(), answered: 0 },
                };
                (point.clone(), s)
            });
            let c = &point.config;
            for t in point.drain(BATCH - used) {
                let Some(v) = UdpView::parse(&t.frame) else { continue };
                if !UdpView::checksums_ok(&t.frame) {
                    continue;
                }
                let payload = &t.frame[v.payload.clone()];
                match session {
                    Session::Sender(s) => {
                        if let Ok(r) = ReflectorRepr::parse(payload) {
                            s.on_reply(unix(t.at), &r);
                        }
                    }
                    Session::Reflector { reflector, answered } => {
                        let Ok(test) = SenderRepr::parse(payload) else { continue };
                        let reply =
                            reflector.reflect((v.src_ip, v.src_port), &test, unix(t.at), v.ttl, unix_now, error);
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
            }
            if let (Session::Sender(s), ProbeRole::Sender { src_port, peer_mac, peer_ip, .. }) = (session, c.role) {
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
    fn times_on_the_agents_clock_map_to_unix_time_both_ways() {
        assert_eq!(unix_of(90, 100, 1_000), 990);
        assert_eq!(unix_of(110, 100, 1_000), 1_010);
        assert_eq!(unix_of(0, 100, 50), 0);
    }
}
