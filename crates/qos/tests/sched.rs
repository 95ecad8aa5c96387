//! The scheduler on a virtual clock: rates, sharing, isolation, bounds.

use netslice_qos::NS_PER_SEC;
use netslice_qos::sched::{ClassConfig, Discipline, LinkId, QueueLimits, Scheduler};
use proptest::prelude::*;

const MTU: u32 = 1500;
const DRR: Discipline = Discipline::Drr { quantum: MTU };

fn mbit(m: u64) -> u64 {
    m * 1_000_000 / 8
}

fn class(rate: u64, ceil: u64) -> ClassConfig {
    ClassConfig { rate, ceil, burst: 2 * u64::from(MTU), weight: 1 }
}

const LIMITS: QueueLimits = QueueLimits { bytes: 1 << 20, packets: 1000 };

/// A traffic source: `rate` bytes/s of `len`-byte packets (0 = always backlogged).
#[derive(Clone)]
struct Source {
    link: LinkId,
    rate: u64,
    len: u32,
    next: u64,
}

/// What a run produced.
struct Run {
    /// (time, link, len) of every packet sent.
    sent: Vec<(u64, LinkId, u32)>,
    /// Per-packet queueing delay (ns) by link.
    delays: Vec<Vec<u64>>,
}

fn simulate(
    s: &mut Scheduler<u64>,
    mut sources: Vec<Source>,
    links: usize,
    duration: u64,
    mut sizes: impl FnMut() -> u32,
) -> Run {
    let mut now = 0u64;
    let mut sent = Vec::new();
    let mut delays = vec![Vec::new(); links];
    // Keep backlogged sources topped up.
    let top_up = |s: &mut Scheduler<u64>, src: &Source, now: u64, sizes: &mut dyn FnMut() -> u32| {
        while s.stats(src.link).unwrap().queued_packets < 20 {
            let len = if src.len == 0 { sizes() } else { src.len };
            if s.enqueue(src.link, len, now).is_err() {
                break;
            }
        }
    };
    for src in sources.iter().filter(|s| s.rate == 0) {
        top_up(s, src, now, &mut sizes);
    }
    while now < duration {
        while let Some((l, len, t_in)) = s.dequeue(now) {
            sent.push((now, l, len));
            delays[l].push(now - t_in);
            if let Some(src) = sources.iter().find(|x| x.link == l && x.rate == 0) {
                top_up(s, &src.clone(), now, &mut sizes);
            }
        }
        let next_arrival = sources.iter().filter(|x| x.rate > 0).map(|x| x.next).min().unwrap_or(u64::MAX);
        let wake = s.next_wakeup(now).unwrap_or(u64::MAX);
        let next = next_arrival.min(wake).max(now + 1);
        if next == u64::MAX {
            break;
        }
        now = next;
        for src in sources.iter_mut().filter(|x| x.rate > 0) {
            while src.next <= now {
                let _ = s.enqueue(src.link, src.len, src.next);
                src.next += NS_PER_SEC * u64::from(src.len) / src.rate;
            }
        }
    }
    Run { sent, delays }
}

fn bytes_in(run: &Run, link: LinkId, from: u64, to: u64) -> u64 {
    run.sent.iter().filter(|(t, l, _)| *l == link && *t >= from && *t < to).map(|(_, _, n)| u64::from(*n)).sum()
}

fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    let s2: f64 = x.iter().map(|v| v * v).sum();
    s * s / (x.len() as f64 * s2)
}

#[test]
fn backlogged_class_gets_its_rate_within_one_percent() {
    for (m, disc) in [(10, DRR), (100, DRR), (1000, DRR), (100, Discipline::Wfq)] {
        let mut s = Scheduler::new(mbit(10_000), 64 * 1024, disc, 0).unwrap();
        let sl = s.add_slice(class(mbit(m), mbit(m)), 0).unwrap();
        let l = s.add_link(sl, class(mbit(m), mbit(m)), LIMITS, 0).unwrap();
        let run = simulate(&mut s, vec![Source { link: l, rate: 0, len: MTU, next: 0 }], 1, 10 * NS_PER_SEC, || MTU);
        let got = bytes_in(&run, l, 0, 10 * NS_PER_SEC) as f64 / 10.0;
        let want = mbit(m) as f64;
        assert!((got - want).abs() / want < 0.01, "{m} Mbit/s: got {got} B/s, want {want}");
    }
}

#[test]
fn ceiling_caps_an_idle_port() {
    let mut s = Scheduler::new(mbit(100), 64 * 1024, DRR, 0).unwrap();
    let sl = s.add_slice(class(0, mbit(100)), 0).unwrap();
    let l = s.add_link(sl, class(mbit(5), mbit(20)), LIMITS, 0).unwrap();
    let run = simulate(&mut s, vec![Source { link: l, rate: 0, len: MTU, next: 0 }], 1, 5 * NS_PER_SEC, || MTU);
    let got = bytes_in(&run, l, 0, 5 * NS_PER_SEC) as f64 / 5.0;
    assert!((got / mbit(20) as f64 - 1.0).abs() < 0.01, "ceiling: {got}");
}

fn drr_gap_bound(two_slices: bool, disc: Discipline) -> (u64, u64) {
    // Ceilings far above the share and deep buckets: only the sharing discipline
    // decides who is served, which is what the bound is about.
    let open = ClassConfig { rate: 0, ceil: mbit(1000), burst: 1 << 20, weight: 1 };
    let mut s = Scheduler::new(mbit(100), 16 * 1024, disc, 0).unwrap();
    let (a, b) = if two_slices {
        let sa = s.add_slice(open, 0).unwrap();
        let sb = s.add_slice(open, 0).unwrap();
        (s.add_link(sa, open, LIMITS, 0).unwrap(), s.add_link(sb, open, LIMITS, 0).unwrap())
    } else {
        let sl = s.add_slice(open, 0).unwrap();
        (s.add_link(sl, open, LIMITS, 0).unwrap(), s.add_link(sl, open, LIMITS, 0).unwrap())
    };
    // Mixed packet sizes from a fixed LCG.
    let mut x = 12345u64;
    let sizes = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        64 + ((x >> 33) % u64::from(MTU - 63)) as u32
    };
    let run = simulate(
        &mut s,
        vec![Source { link: a, rate: 0, len: 0, next: 0 }, Source { link: b, rate: 0, len: 0, next: 0 }],
        2,
        2 * NS_PER_SEC,
        sizes,
    );
    let (mut diff, mut lo, mut hi) = (0i64, 0i64, 0i64);
    for (_, l, n) in &run.sent {
        diff += if *l == a { i64::from(*n) } else { -i64::from(*n) };
        lo = lo.min(diff);
        hi = hi.max(diff);
    }
    ((hi - lo) as u64, run.sent.len() as u64)
}

#[test]
fn drr_service_gap_is_bounded() {
    // Over any interval, the service of two backlogged equal-weight queues differs
    // by at most quantum + 2 x MTU (max minus min of the running difference).
    for two_slices in [false, true] {
        let (gap, n) = drr_gap_bound(two_slices, DRR);
        assert!(n > 10_000);
        assert!(gap <= u64::from(MTU) + 2 * u64::from(MTU), "gap {gap} (two slices: {two_slices})");
    }
    let (gap, _) = drr_gap_bound(true, Discipline::Wfq);
    assert!(gap <= 3 * u64::from(MTU), "WFQ gap {gap}");
}

#[test]
fn equal_backlogged_slices_are_fair() {
    for disc in [DRR, Discipline::Wfq] {
        let mut s = Scheduler::new(mbit(1000), 64 * 1024, disc, 0).unwrap();
        let mut sources = Vec::new();
        for _ in 0..4 {
            let sl = s.add_slice(class(0, mbit(1000)), 0).unwrap();
            let l = s.add_link(sl, class(0, mbit(1000)), LIMITS, 0).unwrap();
            sources.push(Source { link: l, rate: 0, len: MTU, next: 0 });
        }
        let run = simulate(&mut s, sources, 4, 10 * NS_PER_SEC, || MTU);
        for w in 0..10u64 {
            let x: Vec<f64> = (0..4).map(|l| bytes_in(&run, l, w * NS_PER_SEC, (w + 1) * NS_PER_SEC) as f64).collect();
            let j = jain(&x);
            assert!(j >= 0.99, "{disc:?} window {w}: Jain {j} for {x:?}");
        }
    }
}

#[test]
fn weights_split_spare_capacity() {
    let mut s = Scheduler::new(mbit(100), 16 * 1024, DRR, 0).unwrap();
    let mut sources = Vec::new();
    for w in [1u32, 3] {
        let sl = s.add_slice(ClassConfig { weight: w, ..class(0, mbit(100)) }, 0).unwrap();
        let l = s.add_link(sl, class(0, mbit(100)), LIMITS, 0).unwrap();
        sources.push(Source { link: l, rate: 0, len: MTU, next: 0 });
    }
    let run = simulate(&mut s, sources, 2, 5 * NS_PER_SEC, || MTU);
    let (a, b) = (bytes_in(&run, 0, 0, 5 * NS_PER_SEC) as f64, bytes_in(&run, 1, 0, 5 * NS_PER_SEC) as f64);
    assert!((b / a - 3.0).abs() < 0.05, "weights 1:3 gave {a}:{b}");
}

#[test]
fn victim_keeps_its_guarantee_and_latency_under_a_10x_flood() {
    for disc in [DRR, Discipline::Wfq] {
        // Port 100 Mbit/s; A and B each guaranteed 30 Mbit/s, ceiling the port.
        let mut s = Scheduler::new(mbit(100), 16 * 1024, disc, 0).unwrap();
        let sa = s.add_slice(class(mbit(30), mbit(100)), 0).unwrap();
        let sb = s.add_slice(class(mbit(30), mbit(100)), 0).unwrap();
        let la =
            s.add_link(sa, class(mbit(30), mbit(100)), QueueLimits { bytes: 256 * 1024, packets: 200 }, 0).unwrap();
        let lb =
            s.add_link(sb, class(mbit(30), mbit(100)), QueueLimits { bytes: 256 * 1024, packets: 200 }, 0).unwrap();
        let run = simulate(
            &mut s,
            vec![
                Source { link: la, rate: mbit(300), len: MTU, next: 0 },
                Source { link: lb, rate: mbit(30), len: MTU, next: 7 },
            ],
            2,
            5 * NS_PER_SEC,
            || MTU,
        );
        let got_b = bytes_in(&run, lb, NS_PER_SEC, 5 * NS_PER_SEC) as f64 / 4.0;
        assert!(got_b >= 0.99 * mbit(30) as f64, "{disc:?}: victim got {got_b} of {}", mbit(30));
        let got_a = bytes_in(&run, la, NS_PER_SEC, 5 * NS_PER_SEC) as f64 / 4.0;
        assert!(got_a >= 0.98 * mbit(70) as f64, "{disc:?}: aggressor gets the rest: {got_a}");
        let mut d = run.delays[lb].clone();
        d.sort_unstable();
        let p99 = d[d.len() * 99 / 100];
        assert!(p99 <= 1_000_000, "{disc:?}: victim p99 delay {p99} ns");
        let st = s.stats(la).unwrap();
        assert!(st.drop_packets + st.drop_bytes > 0 && st.queued_packets <= 200, "flood is bounded: {st:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the classes and traffic: no link exceeds its ceiling, the port
    /// never exceeds its rate (plus bursts), and queue accounting stays exact.
    #[test]
    fn never_exceeds_ceilings(
        port_mbit in 10u64..1000,
        classes in proptest::collection::vec((0u64..50, 1u64..200, 1u32..4, 100u64..400), 1..6),
        wfq: bool,
    ) {
        let disc = if wfq { Discipline::Wfq } else { DRR };
        let mut s = Scheduler::new(mbit(port_mbit), 16 * 1024, disc, 0).unwrap();
        let mut sources = Vec::new();
        let mut ceils = Vec::new();
        for (i, (rate, ceil_extra, w, offered)) in classes.iter().enumerate() {
            let rate = mbit(*rate);
            let ceil = rate + mbit(*ceil_extra);
            let sl = s.add_slice(ClassConfig { rate, ceil, burst: 3000, weight: *w }, 0).unwrap();
            let l = s.add_link(sl, ClassConfig { rate, ceil, burst: 3000, weight: 1 }, QueueLimits { bytes: 100_000, packets: 100 }, 0).unwrap();
            sources.push(Source { link: l, rate: mbit(*offered), len: 1000, next: i as u64 });
            ceils.push(ceil);
        }
        let n = sources.len();
        let t = NS_PER_SEC / 5;
        let run = simulate(&mut s, sources, n, t, || 1000);
        let mut total = 0;
        for (l, ceil) in ceils.iter().enumerate() {
            let b = bytes_in(&run, l, 0, t + 1);
            total += b;
            prop_assert!(b <= ceil / 5 + 3000 + 1000, "link {l}: {b} > ceil {ceil}");
            let st = s.stats(l).unwrap();
            prop_assert!(st.queued_packets <= 100 && st.queued_bytes <= 100_000);
        }
        prop_assert!(total <= mbit(port_mbit) / 5 + 16 * 1024 + 1000, "port: {total}");
    }
}
