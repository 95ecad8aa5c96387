//! The Virne WX100 workload replayed against netslice's embedding (and a greedy
//! node-ranking baseline in the same run).
//!
//!   cargo bench -p netslice-embed --bench vne [-- --quick]
//!
//! Substrate: Waxman graph of 100 nodes (networkx semantics: positions uniform in
//! the unit square, edge probability 0.5 * exp(-d / (0.2 * L)), L the largest
//! distance, resampled until connected), CPU and bandwidth uniform integers in
//! 50..=100. Requests: 1000, each of 2..=10 nodes on a connected G(n, 0.5), CPU
//! 0..=20 and bandwidth 0..=50 (uniform integers), Poisson arrivals at rate eta,
//! lifetimes exponential with mean 500. Seeds 0, 1111, ..., 9999. Metrics:
//! acceptance ratio, long-term revenue / cost (REV = sum cpu + sum bw, COST = sum
//! cpu + sum bw x hops, both weighted by lifetime), time to embed one request.

// A benchmark measures wall time; the crate it measures stays sans-IO.
#![allow(clippy::disallowed_methods)]

use std::collections::BinaryHeap;
use std::time::Instant;

use netslice_embed::vne::{Embedding, Options, PNet, VNet, embed};

/// SplitMix64: small, seedable, good enough for workload generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn int(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
}

fn connected(n: usize, edges: &[(usize, usize)]) -> bool {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges {
        adj[a].push(b);
        adj[b].push(a);
    }
    let mut seen = vec![false; n];
    let mut stack = vec![0];
    seen[0] = true;
    while let Some(u) = stack.pop() {
        for &w in &adj[u] {
            if !seen[w] {
                seen[w] = true;
                stack.push(w);
            }
        }
    }
    seen.iter().all(|&s| s)
}

fn waxman(rng: &mut Rng, n: usize, alpha: f64, beta: f64) -> Vec<(usize, usize)> {
    loop {
        let pos: Vec<(f64, f64)> = (0..n).map(|_| (rng.f64(), rng.f64())).collect();
        let d = |a: usize, b: usize| ((pos[a].0 - pos[b].0).powi(2) + (pos[a].1 - pos[b].1).powi(2)).sqrt();
        let mut l = 0.0f64;
        for a in 0..n {
            for b in a + 1..n {
                l = l.max(d(a, b));
            }
        }
        let mut edges = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                if rng.f64() < beta * (-d(a, b) / (alpha * l)).exp() {
                    edges.push((a, b));
                }
            }
        }
        if connected(n, &edges) {
            return edges;
        }
    }
}

fn gnp(rng: &mut Rng, n: usize, p: f64) -> Vec<(usize, usize)> {
    loop {
        let mut edges = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                if rng.f64() < p {
                    edges.push((a, b));
                }
            }
        }
        if n == 1 || connected(n, &edges) {
            return edges;
        }
    }
}

struct Workload {
    substrate: PNet,
    requests: Vec<(VNet, f64)>, // request, lifetime
    gaps: Vec<f64>,             // inter-arrival times at rate 1
}

fn workload(seed: u64) -> Workload {
    let mut rng = Rng(seed);
    let edges = waxman(&mut rng, 100, 0.2, 0.5);
    let mut p = PNet::new(100);
    for h in 0..100 {
        p.cpu[h] = rng.int(50, 100) as f64;
    }
    for (a, b) in edges {
        let bw = rng.int(50, 100);
        p.add_link(a, b, bw);
    }
    let mut requests = Vec::new();
    let mut gaps = Vec::new();
    for _ in 0..1000 {
        let n = rng.int(2, 10) as usize;
        let links = gnp(&mut rng, n, 0.5);
        let v = VNet {
            cpu: (0..n).map(|_| rng.int(0, 20) as f64).collect(),
            mem: vec![0; n],
            pins: vec![None; n],
            links: links.into_iter().map(|(a, b)| (a, b, rng.int(0, 50))).collect(),
            ..VNet::default()
        };
        let life = rng.exp(500.0);
        requests.push((v, life));
        gaps.push(rng.exp(1.0));
    }
    Workload { substrate: p, requests, gaps }
}

/// The baseline: rank hosts by free CPU x free incident bandwidth, put each
/// virtual node (heaviest first) on the best-ranked fitting host, then map each
/// virtual link on a shortest feasible path.
fn greedy(p: &PNet, v: &VNet) -> Option<Embedding> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v.cpu[b].total_cmp(&v.cpu[a]));
    let rank = |h: usize| {
        let bw: u64 = p.adj[h].iter().map(|&(_, l)| p.bw[l][0]).sum();
        p.cpu[h] * bw as f64
    };
    let mut hosts: Vec<usize> = (0..p.len()).collect();
    hosts.sort_by(|&a, &b| rank(b).total_cmp(&rank(a)));
    let mut used = vec![false; p.len()];
    let mut map = vec![usize::MAX; v.len()];
    for u in order {
        let h = *hosts.iter().find(|&&h| !used[h] && p.cpu[h] >= v.cpu[u])?;
        used[h] = true;
        map[u] = h;
    }
    // Link mapping with pins = the greedy placement.
    let pinned = VNet { pins: map.iter().map(|&h| Some(h)).collect(), ..v.clone() };
    embed(p, &pinned, &Options { roots: 1, candidates: 1, k_paths: 1 }).ok()
}

#[derive(Default)]
struct Stats {
    accepted: usize,
    rev: f64,
    cost: f64,
    times_us: Vec<f64>,
}

fn run(w: &Workload, eta: f64, solver: &dyn Fn(&PNet, &VNet) -> Option<Embedding>) -> Stats {
    let mut p = w.substrate.clone();
    // Departures: (-time, request index) in a max-heap = earliest first.
    let mut live: BinaryHeap<(std::cmp::Reverse<u64>, usize)> = BinaryHeap::new();
    let mut embeddings: Vec<Option<Embedding>> = vec![None; w.requests.len()];
    let mut t = 0.0;
    let mut s = Stats::default();
    for (i, (v, life)) in w.requests.iter().enumerate() {
        t += w.gaps[i] / eta;
        while let Some(&(std::cmp::Reverse(end), j)) = live.peek() {
            if (end as f64) / 1e6 > t {
                break;
            }
            live.pop();
            if let Some(e) = embeddings[j].take() {
                p.release(&w.requests[j].0, &e);
            }
        }
        let start = Instant::now();
        let res = solver(&p, v);
        s.times_us.push(start.elapsed().as_secs_f64() * 1e6);
        if let Some(e) = res {
            p.reserve(v, &e);
            s.accepted += 1;
            s.rev += v.revenue() * life;
            s.cost += e.cost(v) * life;
            live.push((std::cmp::Reverse(((t + life) * 1e6) as u64), i));
            embeddings[i] = Some(e);
        }
    }
    // Invariant: releasing everything still held gives back the empty substrate.
    for (j, e) in embeddings.iter().enumerate() {
        if let Some(e) = e {
            p.release(&w.requests[j].0, e);
        }
    }
    assert_eq!(p.bw, w.substrate.bw, "bandwidth returned exactly");
    assert!(p.cpu.iter().zip(&w.substrate.cpu).all(|(a, b)| (a - b).abs() < 1e-6), "cpu returned exactly");
    s
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seeds: Vec<u64> = if quick { vec![0, 1111] } else { (0..10).map(|i| i * 1111).collect() };
    let etas = [0.08, 0.14, 0.20, 0.28];
    let workloads: Vec<Workload> = seeds.iter().map(|&s| workload(s)).collect();
    let links: usize = workloads.iter().map(|w| w.substrate.links.len()).sum::<usize>() / workloads.len();
    println!("WX100: {} seeds, substrate 100 hosts / {links} links on average, 1000 requests each", seeds.len());
    println!("| eta | solver | acceptance | long-term R/C | embed time median / p99 (us) |");
    println!("| --- | --- | --- | --- | --- |");
    let ours = |p: &PNet, v: &VNet| embed(p, v, &Options::default()).ok();
    for eta in etas {
        for (name, solver) in
            [("netslice", &ours as &dyn Fn(&PNet, &VNet) -> Option<Embedding>), ("greedy baseline", &greedy)]
        {
            let mut acc = Vec::new();
            let mut rc = Vec::new();
            let mut times = Vec::new();
            for w in &workloads {
                let s = run(w, eta, solver);
                acc.push(s.accepted as f64 / w.requests.len() as f64);
                rc.push(s.rev / s.cost.max(1e-9));
                times.extend(s.times_us);
            }
            let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
            let sd = |x: &[f64]| {
                let m = mean(x);
                (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
            };
            let med = median(&mut times);
            let p99 = times[times.len() * 99 / 100];
            println!(
                "| {eta:.2} | {name} | {:.1}% (sd {:.1}) | {:.3} (sd {:.3}) | {med:.0} / {p99:.0} |",
                100.0 * mean(&acc),
                100.0 * sd(&acc),
                mean(&rc),
                sd(&rc)
            );
        }
    }
}
