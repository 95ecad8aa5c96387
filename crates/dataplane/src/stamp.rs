//! STAMP sessions, sans-IO (RFC 8762, unauthenticated, stateful reflector):
//! a [`Sender`] that says when to send the next test packet and keeps what
//! it needs to match replies, and a [`Reflector`] that answers. What a
//! session measured comes out as perfSONAR names it ([`Results`]): packets
//! sent, received, lost (each way, told apart by the stateful reflector's
//! own sequence numbers), duplicated, reordered; one-way and round-trip
//! delay min/median/p99/max with a 1-ms histogram; jitter; and the Error
//! Estimates of both clocks.
//!
//! Times are nanoseconds since the Unix epoch, passed in (the agent reads
//! its clock; tests use a virtual one).

use std::collections::BTreeMap;

pub use netslice_model::api::{StampDelay as DelayStats, StampResults as Results};
use netslice_wire::stamp::{ErrorEstimate, ReflectorRepr, SenderRepr, ntp_from_unix_ns, unix_ns_from_ntp};

/// Test packets a sender remembers while it waits for their replies (older
/// ones are given up as lost).
pub const MAX_OUTSTANDING: usize = 65_536;
/// How far an echoed timestamp may be from the one sent (NTP units: 2^-32 s;
/// this is about 1 ms).
pub const ECHO_SLACK: u64 = 1 << 22;
/// How late a sender may be and still send every packet that was due
/// (later, it skips them rather than burst).
pub const MAX_CATCH_UP_NS: u64 = 100_000_000;

/// Summarizes delays (nanoseconds, in arrival order).
fn summarize(delays_ns: &[i64]) -> Option<DelayStats> {
    if delays_ns.is_empty() {
        return None;
    }
    let mut s: Vec<i64> = delays_ns.to_vec();
    s.sort_unstable();
    let ms = |ns: i64| ns as f64 / 1e6;
    let pick = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    let jitter = if delays_ns.len() > 1 {
        delays_ns.windows(2).map(|w| (w[1] - w[0]).unsigned_abs() as f64).sum::<f64>() / (delays_ns.len() - 1) as f64
    } else {
        0.0
    };
    let top = (s[s.len() - 1].max(0) / 1_000_000) as usize;
    let mut histogram_1ms = vec![0u64; top.min(10_000) + 1];
    for d in &s {
        let b = ((d.max(&0) / 1_000_000) as usize).min(histogram_1ms.len() - 1);
        histogram_1ms[b] += 1;
    }
    Some(DelayStats {
        min_ms: ms(s[0]),
        median_ms: ms(pick(0.5)),
        p99_ms: ms(pick(0.99)),
        max_ms: ms(s[s.len() - 1]),
        jitter_ms: jitter / 1e6,
        histogram_1ms,
    })
}

/// The sending side of a session.
#[derive(Debug)]
pub struct Sender {
    ssid: u16,
    interval_ns: u64,
    next_at: u64,
    end: u64,
    seq: u32,
    error: ErrorEstimate,
    outstanding: BTreeMap<u32, u64>,
    seen: BTreeMap<u32, u8>,
    highest: Option<u32>,
    reflector_max_seq: Option<u32>,
    duplicated: u64,
    reordered: u64,
    stateful: bool,
    forward: Vec<i64>,
    reverse: Vec<i64>,
    round_trip: Vec<i64>,
    reflector_error: Option<ErrorEstimate>,
}

impl Sender {
    /// A session sending `rate` packets a second from `start` to `end`.
    pub fn new(ssid: u16, rate: u32, start: u64, end: u64, error: ErrorEstimate) -> Sender {
        Sender {
            ssid,
            interval_ns: 1_000_000_000 / u64::from(rate.max(1)),
            next_at: start,
            end,
            seq: 0,
            error,
            outstanding: BTreeMap::new(),
            seen: BTreeMap::new(),
            highest: None,
            reflector_max_seq: None,
            duplicated: 0,
            reordered: 0,
            stateful: false,
            forward: Vec::new(),
            reverse: Vec::new(),
            round_trip: Vec::new(),
            reflector_error: None,
        }
    }

    /// The Error Estimate of the next test packets (the clock's state changes).
    pub fn set_error(&mut self, error: ErrorEstimate) {
        self.error = error;
    }

    /// When the next test packet is due (`None`: the session sent them all).
    pub fn poll_timeout(&self) -> Option<u64> {
        (self.next_at < self.end).then_some(self.next_at)
    }

    /// The test packet due at `now`, if one is (stamped with `now`).
    pub fn poll_transmit(&mut self, now: u64) -> Option<SenderRepr> {
        if self.next_at >= self.end || now < self.next_at {
            return None;
        }
        // A sender a little late (its thread waited for a core) sends what
        // was due, so a window holds rate x duration packets; one far behind
        // does not burst to catch up.
        self.next_at = if now - self.next_at > MAX_CATCH_UP_NS { now } else { self.next_at } + self.interval_ns;
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.outstanding.insert(seq, now);
        while self.outstanding.len() > MAX_OUTSTANDING {
            self.outstanding.pop_first();
        }
        Some(SenderRepr { seq, timestamp: ntp_from_unix_ns(now), error: self.error, ssid: self.ssid, tlvs: Vec::new() })
    }

    /// A reply that arrived at `now`. Replies of other sessions, and replies
    /// that do not echo the timestamp their test packet left with (an
    /// earlier session's packet of the same number), are ignored; so are
    /// replies to packets older than the last [`MAX_OUTSTANDING`].
    pub fn on_reply(&mut self, now: u64, r: &ReflectorRepr) {
        if r.ssid != self.ssid || r.sender_seq >= self.seq {
            return;
        }
        let Some(&sent) = self.outstanding.get(&r.sender_seq) else { return };
        // Within a millisecond: reflectors that re-encode the timestamp may
        // round its last bits (scapy does); an earlier session's is far off.
        if ntp_from_unix_ns(sent).abs_diff(r.sender_timestamp) > ECHO_SLACK {
            return;
        }
        if r.seq != r.sender_seq {
            self.stateful = true;
        }
        let n = self.seen.entry(r.sender_seq).or_default();
        *n = n.saturating_add(1);
        if *n > 1 {
            self.duplicated += 1;
            return;
        }
        if self.highest.is_some_and(|h| r.sender_seq < h) {
            self.reordered += 1;
        }
        self.highest = Some(self.highest.map_or(r.sender_seq, |h| h.max(r.sender_seq)));
        self.reflector_max_seq = Some(self.reflector_max_seq.map_or(r.seq, |m| m.max(r.seq)));
        self.reflector_error = Some(r.error);
        let (rx, tx) = (unix_ns_from_ntp(r.receive_timestamp), unix_ns_from_ntp(r.timestamp));
        self.forward.push(rx as i64 - sent as i64);
        self.reverse.push(now as i64 - tx as i64);
        self.round_trip.push((now as i64 - sent as i64) - (tx as i64 - rx as i64));
    }

    /// What the session measured so far.
    pub fn results(&self) -> Results {
        let sent = u64::from(self.seq);
        let received = self.seen.len() as u64;
        // The stateful reflector numbers what it received from 0: the
        // highest number seen + 1 is how many it reflected (at least).
        // A stateless reflector echoes the sender's numbers: then nothing
        // tells where a packet was lost.
        let known = self.stateful || received == 0;
        let reflected = if known {
            self.reflector_max_seq.map_or(0, |m| u64::from(m) + 1).max(received).min(sent)
        } else {
            received
        };
        let reflector_error = self.reflector_error.unwrap_or_default();
        Results {
            sent,
            received,
            reflected,
            directions_known: known,
            lost_forward: if known { sent - reflected } else { 0 },
            lost_reverse: reflected - received,
            lost: sent - received,
            duplicated: self.duplicated,
            reordered: self.reordered,
            forward: summarize(&self.forward),
            reverse: summarize(&self.reverse),
            round_trip: summarize(&self.round_trip),
            sender_error_s: self.error.seconds(),
            reflector_error_s: reflector_error.seconds(),
            synchronized: self.error.synchronized && reflector_error.synchronized,
        }
    }
}

/// A session as a reflector tells them apart (RFC 8972 §3): the sender's
/// address and UDP port, and the SSID.
pub type SessionKey = (std::net::Ipv4Addr, u16, u16);

/// Sessions a reflector keeps a sequence number for, at most (the one used
/// least recently is forgotten first).
pub const MAX_SESSIONS: usize = 1024;

/// The reflecting side: stateful (its own sequence number per session).
#[derive(Debug, Default)]
pub struct Reflector {
    seqs: BTreeMap<SessionKey, (u32, u64)>,
    uses: u64,
}

impl Reflector {
    /// The answer to a test packet of session `from` that arrived at
    /// `received` with `ttl`, sent back at `now`.
    pub fn reflect(
        &mut self,
        from: (std::net::Ipv4Addr, u16),
        test: &SenderRepr,
        received: u64,
        ttl: u8,
        now: u64,
        error: ErrorEstimate,
    ) -> ReflectorRepr {
        self.uses += 1;
        let key = (from.0, from.1, test.ssid);
        if !self.seqs.contains_key(&key)
            && self.seqs.len() >= MAX_SESSIONS
            && let Some(oldest) = self.seqs.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k)
        {
            self.seqs.remove(&oldest);
        }
        let (seq, used) = self.seqs.entry(key).or_default();
        *used = self.uses;
        let r = ReflectorRepr::reflect(test, *seq, ntp_from_unix_ns(received), ttl, ntp_from_unix_ns(now), error);
        *seq = seq.wrapping_add(1);
        r
    }

    /// Sessions it keeps.
    pub fn sessions(&self) -> usize {
        self.seqs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const FROM: (std::net::Ipv4Addr, u16) = (std::net::Ipv4Addr::new(10, 0, 0, 1), 50_000);

    #[test]
    fn a_reflector_numbers_each_session_apart_and_forgets_the_least_used() {
        let e = ErrorEstimate::default();
        let mut r = Reflector::default();
        let test = |ssid| SenderRepr { seq: 0, timestamp: 0, error: e, ssid, tlvs: Vec::new() };
        let other = (std::net::Ipv4Addr::new(10, 0, 0, 3), 50_000);
        assert_eq!(r.reflect(FROM, &test(1), 0, 64, 0, e).seq, 0);
        assert_eq!(r.reflect(FROM, &test(1), 0, 64, 0, e).seq, 1);
        assert_eq!(r.reflect(FROM, &test(2), 0, 64, 0, e).seq, 0, "another SSID");
        assert_eq!(r.reflect(other, &test(1), 0, 64, 0, e).seq, 0, "another sender");
        for i in 0..MAX_SESSIONS as u16 {
            r.reflect((std::net::Ipv4Addr::new(10, 1, 0, 1), i), &test(1), 0, 64, 0, e);
        }
        assert_eq!(r.sessions(), MAX_SESSIONS);
        assert_eq!(r.reflect(FROM, &test(1), 0, 64, 0, e).seq, 0, "forgotten, so numbered afresh");
    }

    /// A virtual path: each way its own delay and a loss pattern.
    #[test]
    fn loss_each_way_delays_and_jitter_come_out_right() {
        let e = ErrorEstimate::at_least(1e-6, true);
        let start = 1_800_000_000_000_000_000;
        let mut s = Sender::new(9, 1000, start, start + 10_000 * MS, e);
        let mut r = Reflector::default();
        let mut now = start;
        let mut n = 0u64;
        while let Some(at) = s.poll_timeout() {
            now = now.max(at);
            let Some(t) = s.poll_transmit(now) else { continue };
            n += 1;
            // Forward: 5 ms (+1 ms every other packet); every 50th lost.
            if n % 50 == 0 {
                continue;
            }
            let fwd = 5 * MS + (n % 2) * MS;
            let back = r.reflect(FROM, &t, now + fwd, 64, now + fwd + 10_000, e);
            // Reverse: 3 ms; every 100th (odd ones) lost.
            if n % 100 == 1 {
                continue;
            }
            s.on_reply(now + fwd + 10_000 + 3 * MS, &back);
            if n == 7 {
                s.on_reply(now + fwd + 10_000 + 4 * MS, &back); // a duplicate
            }
        }
        let res = s.results();
        assert_eq!(res.sent, 10_000);
        assert_eq!(res.lost_forward, 200);
        assert_eq!(res.lost_reverse, 100);
        assert_eq!(res.received, 9_700);
        assert_eq!(res.duplicated, 1);
        assert_eq!(res.reordered, 0);
        let f = res.forward.unwrap();
        assert_eq!((f.min_ms, f.max_ms), (5.0, 6.0));
        assert!((f.jitter_ms - 1.0).abs() < 0.05, "{}", f.jitter_ms);
        assert_eq!(f.histogram_1ms.iter().sum::<u64>(), 9_700);
        let rt = res.round_trip.unwrap();
        assert_eq!((rt.min_ms, rt.max_ms), (8.0, 9.0), "the reflector's 10 us turnaround is taken out");
        assert!(res.synchronized);
        assert!(res.directions_known);
    }

    #[test]
    fn a_briefly_late_sender_sends_what_was_due_and_a_stalled_one_skips() {
        let mut s = Sender::new(1, 1000, 0, 1_000 * MS, ErrorEstimate::default());
        // 3 ms late: the three packets due go at once.
        let n = (0..10).filter(|_| s.poll_transmit(3 * MS).is_some()).count();
        assert_eq!(n, 4, "0, 1, 2 and 3 ms were due");
        // 500 ms stalled: one now, then on schedule from now.
        let n = (0..10).filter(|_| s.poll_transmit(503 * MS).is_some()).count();
        assert_eq!(n, 1);
        assert_eq!(s.poll_timeout(), Some(504 * MS));
    }

    #[test]
    fn a_stale_reply_is_ignored_and_a_stateless_reflector_leaves_the_split_unknown() {
        let e = ErrorEstimate::default();
        let mut s = Sender::new(1, 100, 0, 50 * MS, e);
        let tests: Vec<SenderRepr> = (0..4).map(|i| s.poll_transmit(i * 10 * MS).unwrap()).collect();
        // An earlier session's packet 0 (another timestamp) answered late.
        let stale = SenderRepr { timestamp: tests[0].timestamp + (1 << 32), ..tests[0].clone() };
        let mut r = Reflector::default();
        s.on_reply(MS, &r.reflect(FROM, &stale, MS, 64, MS, e));
        assert_eq!(s.results().received, 0, "a stale reply counted");
        // A stateless reflector (its numbers are the sender's); packet 1 lost.
        for t in [&tests[0], &tests[2], &tests[3]] {
            let mut reply = ReflectorRepr::reflect(t, t.seq, t.timestamp, 64, t.timestamp, e);
            // A re-encoding reflector may round the echoed timestamp's last bit.
            reply.sender_timestamp ^= 1;
            s.on_reply(45 * MS, &reply);
        }
        let res = s.results();
        assert_eq!((res.sent, res.received, res.lost), (4, 3, 1));
        assert!(!res.directions_known);
        assert_eq!((res.lost_forward, res.lost_reverse), (0, 0));
    }

    #[test]
    fn a_late_reply_counts_as_reordered_and_a_stranger_is_ignored() {
        let e = ErrorEstimate::default();
        let mut s = Sender::new(1, 100, 0, 30 * MS, e);
        let mut r = Reflector::default();
        let a = s.poll_transmit(0).unwrap();
        let b = s.poll_transmit(10 * MS).unwrap();
        let (ra, rb) = (r.reflect(FROM, &a, MS, 64, MS, e), r.reflect(FROM, &b, 11 * MS, 64, 11 * MS, e));
        s.on_reply(12 * MS, &rb);
        s.on_reply(13 * MS, &ra);
        let other = ReflectorRepr { ssid: 2, ..ra.clone() };
        s.on_reply(14 * MS, &other);
        let res = s.results();
        assert_eq!((res.received, res.reordered, res.lost), (2, 1, 0));
    }
}
