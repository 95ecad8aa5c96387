//! Virtual network embedding on an abstract substrate: the algorithm behind the
//! SNC/TNC, shared by the manager's planner and the VNE benchmark.
//!
//! The mapping is *topology-aware*: virtual nodes are placed one at a time in
//! breadth-first order of the virtual graph, each on the host that is cheapest
//! to reach from its already-placed neighbours (hop distance over links with
//! enough free bandwidth, times the bandwidth asked), and its virtual links are
//! mapped at once onto one of the k shortest feasible paths (unsplittable). The
//! search restarts from several root hosts (the best ranked by free CPU x free
//! incident bandwidth) and keeps the cheapest complete embedding, so a slice ends
//! up on hosts close to each other and costs little substrate bandwidth.
//!
//! Everything is reserved on a working copy; the caller commits the result.

use std::collections::VecDeque;

/// The substrate as the algorithm sees it: free resources only.
#[derive(Debug, Clone, Default)]
pub struct PNet {
    /// Free CPU per host.
    pub cpu: Vec<f64>,
    /// Free memory per host, bytes.
    pub mem: Vec<u64>,
    /// Free sliver slots per host.
    pub slots: Vec<u32>,
    /// Free interface ports per host.
    pub ports: Vec<u32>,
    /// Hosts that may run virtual nodes.
    pub eligible: Vec<bool>,
    /// Link endpoints.
    pub links: Vec<(usize, usize)>,
    /// Free bandwidth per link, per direction: `[a -> b, b -> a]`.
    pub bw: Vec<[u64; 2]>,
    /// Adjacency: `(neighbour, link)`.
    pub adj: Vec<Vec<(usize, usize)>>,
    /// The CPU budget each host draws on (its own, or its machine's shared
    /// with other hosts), if it has one: slivers' CPU and forwarding work
    /// come out of it.
    pub budget_of: Vec<Option<usize>>,
    /// Free cores per budget.
    pub budget: Vec<f64>,
}

impl PNet {
    /// A substrate of `n` hosts without links.
    pub fn new(n: usize) -> PNet {
        PNet {
            cpu: vec![0.0; n],
            mem: vec![u64::MAX; n],
            slots: vec![u32::MAX; n],
            ports: vec![u32::MAX; n],
            eligible: vec![true; n],
            links: Vec::new(),
            bw: Vec::new(),
            adj: vec![Vec::new(); n],
            budget_of: vec![None; n],
            budget: Vec::new(),
        }
    }

    /// Free cores of the budget `host` draws on (infinite without one).
    pub fn budget_free(&self, host: usize) -> f64 {
        self.budget_of.get(host).copied().flatten().map(|b| self.budget[b]).unwrap_or(f64::INFINITY)
    }

    fn take_budget(&mut self, host: usize, cores: f64) {
        if let Some(b) = self.budget_of.get(host).copied().flatten() {
            self.budget[b] -= cores;
        }
    }

    /// The forwarding work virtual link `l` puts on each budget along
    /// `path` from `a` (cores), or the first host whose budget cannot take
    /// it: `Err((host, asked there, free there))`.
    fn path_work(
        &self,
        v: &VNet,
        l: usize,
        a: usize,
        path: &[(usize, usize)],
    ) -> Result<Vec<(usize, f64)>, (usize, f64, f64)> {
        self.work_along(v, l, a, path, true)
    }

    fn work_along(
        &self,
        v: &VNet,
        l: usize,
        a: usize,
        path: &[(usize, usize)],
        check: bool,
    ) -> Result<Vec<(usize, f64)>, (usize, f64, f64)> {
        let Some(work) = v.work.get(l) else { return Ok(Vec::new()) };
        let mut hosts = vec![a];
        for &(link, from) in path {
            let (x, y) = self.links[link];
            hosts.push(if from == x { y } else { x });
        }
        let last = hosts.len() - 1;
        let mut per: Vec<(usize, f64)> = Vec::new();
        for (i, &h) in hosts.iter().enumerate() {
            let [end, transit, local] = work.get(h).copied().unwrap_or_default();
            let cores = if last == 0 {
                local
            } else if i == 0 || i == last {
                end
            } else {
                transit
            };
            if cores <= 0.0 {
                continue;
            }
            let Some(b) = self.budget_of.get(h).copied().flatten() else { continue };
            match per.iter_mut().find(|(x, _)| *x == b) {
                Some((_, c)) => *c += cores,
                None => per.push((b, cores)),
            }
            let asked = per.iter().find(|(x, _)| *x == b).map(|p| p.1).unwrap_or(0.0);
            if check && asked > self.budget[b] + 1e-9 {
                return Err((h, asked, self.budget[b].max(0.0)));
            }
        }
        Ok(per)
    }

    /// Adds a link with `bw` free in both directions; returns its index.
    pub fn add_link(&mut self, a: usize, b: usize, bw: u64) -> usize {
        let i = self.links.len();
        self.links.push((a, b));
        self.bw.push([bw, bw]);
        self.adj[a].push((b, i));
        self.adj[b].push((a, i));
        i
    }

    /// Hosts.
    pub fn len(&self) -> usize {
        self.cpu.len()
    }

    /// No hosts.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_empty()
    }

    /// [`path_work`](Self::path_work) without the check (for reserving
    /// and releasing what was admitted).
    fn path_work_unchecked(&self, v: &VNet, l: usize, a: usize, path: &[(usize, usize)]) -> Vec<(usize, f64)> {
        self.work_along(v, l, a, path, false).unwrap_or_default()
    }

    /// Free bandwidth usable by a virtual link crossing `link` from `from`:
    /// virtual links take the same bandwidth both ways, so the smaller direction.
    fn free(&self, link: usize, from: usize) -> u64 {
        let _ = from;
        self.bw[link][0].min(self.bw[link][1])
    }

    fn take(&mut self, link: usize, from: usize, bw: u64) {
        let (a, _) = self.links[link];
        let d = usize::from(from != a);
        self.bw[link][d] = self.bw[link][d].checked_sub(bw).expect("reserved only what was free");
    }

    /// Reserves an embedding (as returned by [`embed`]).
    pub fn reserve(&mut self, v: &VNet, e: &Embedding) {
        for (i, &h) in e.hosts.iter().enumerate() {
            self.cpu[h] -= v.cpu[i];
            self.take_budget(h, v.cpu[i]);
            self.mem[h] = self.mem[h].saturating_sub(v.mem[i]);
            self.slots[h] = self.slots[h].saturating_sub(v.slot_demand(i));
            self.ports[h] = self.ports[h].saturating_sub(v.port_demand(i));
        }
        for (l, path) in e.paths.iter().enumerate() {
            let bw = v.links[l].2;
            let a = e.hosts[v.links[l].0];
            for (b, cores) in self.path_work_unchecked(v, l, a, path) {
                self.budget[b] -= cores;
            }
            for &(link, from) in path {
                let (a, b) = self.links[link];
                self.take(link, from, bw);
                let back = if from == a { b } else { a };
                self.take(link, back, bw);
            }
        }
    }

    /// Releases an embedding: the exact inverse of [`reserve`](Self::reserve).
    pub fn release(&mut self, v: &VNet, e: &Embedding) {
        for (i, &h) in e.hosts.iter().enumerate() {
            self.cpu[h] += v.cpu[i];
            self.take_budget(h, -v.cpu[i]);
            self.mem[h] = self.mem[h].saturating_add(v.mem[i]);
            self.slots[h] = self.slots[h].saturating_add(v.slot_demand(i));
            self.ports[h] = self.ports[h].saturating_add(v.port_demand(i));
        }
        for (l, path) in e.paths.iter().enumerate() {
            let bw = v.links[l].2;
            let a = e.hosts[v.links[l].0];
            for (b, cores) in self.path_work_unchecked(v, l, a, path) {
                self.budget[b] += cores;
            }
            for &(link, _) in path {
                self.bw[link][0] += bw;
                self.bw[link][1] += bw;
            }
        }
    }
}

/// A virtual network request.
#[derive(Debug, Clone, Default)]
pub struct VNet {
    /// CPU per virtual node.
    pub cpu: Vec<f64>,
    /// Memory per virtual node, bytes.
    pub mem: Vec<u64>,
    /// Whether a virtual node is a sliver and takes a sliver slot (fast-path
    /// nodes do not); missing entries count as slivers.
    pub sliver: Vec<bool>,
    /// Host a virtual node must go to, if pinned.
    pub pins: Vec<Option<usize>>,
    /// Virtual links: `(node a, node b, bandwidth both ways)`.
    pub links: Vec<(usize, usize, u64)>,
    /// Several virtual nodes may share a host (pinned nodes always may: a pin
    /// is explicit).
    pub share_hosts: bool,
    /// Physical links each virtual link may use (empty: all).
    pub allowed: Vec<Vec<bool>>,
    /// A path to keep for a virtual link if it still fits (live modification).
    pub keep: Vec<Option<Vec<(usize, usize)>>>,
    /// Forwarding work of each virtual link at each host, cores: `[at an
    /// end of its path, in transit, both ends on this host]` (empty or
    /// zero: none charged).
    pub work: Vec<Vec<[f64; 3]>>,
}

impl VNet {
    /// Sliver slots virtual node `u` needs: 1, or 0 for a fast-path node.
    pub fn slot_demand(&self, u: usize) -> u32 {
        u32::from(self.sliver.get(u).copied().unwrap_or(true))
    }

    /// Interfaces (ports) virtual node `u` needs: one per virtual link end.
    pub fn port_demand(&self, u: usize) -> u32 {
        self.links.iter().map(|l| u32::from(l.0 == u) + u32::from(l.1 == u)).sum()
    }

    fn allows(&self, vlink: usize, link: usize) -> bool {
        self.allowed.get(vlink).is_none_or(|a| a.is_empty() || a.get(link).copied().unwrap_or(false))
    }

    /// Virtual nodes.
    pub fn len(&self) -> usize {
        self.cpu.len()
    }

    /// No virtual nodes.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_empty()
    }

    /// Revenue: CPU asked plus bandwidth asked.
    pub fn revenue(&self) -> f64 {
        self.cpu.iter().sum::<f64>() + self.links.iter().map(|l| l.2 as f64).sum::<f64>()
    }
}

/// Where everything went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Embedding {
    /// Host of each virtual node.
    pub hosts: Vec<usize>,
    /// Path of each virtual link from its node a's host to node b's: `(link, from host)`.
    pub paths: Vec<Vec<(usize, usize)>>,
}

impl Embedding {
    /// Cost: CPU used plus bandwidth times hops.
    pub fn cost(&self, v: &VNet) -> f64 {
        v.cpu.iter().sum::<f64>()
            + self.paths.iter().zip(&v.links).map(|(p, l)| (l.2 as f64) * p.len() as f64).sum::<f64>()
    }
}

/// Why a request cannot be embedded (the first obstacle found, by resource).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No host can take virtual node `node`.
    NoHost {
        /// Virtual node.
        node: usize,
        /// The scarcest resource: "cpu", "memory", "sliver slots", "distinct hosts".
        resource: &'static str,
        /// Amount asked.
        asked: f64,
        /// Most free among the candidates.
        best_free: f64,
        /// Candidate hosts considered (the pin, or every eligible host).
        candidates: Vec<usize>,
    },
    /// No path with enough bandwidth for virtual link `link`.
    Bandwidth {
        /// Virtual link.
        link: usize,
        /// Hosts it would join.
        from: usize,
        /// Hosts it would join.
        to: usize,
        /// Asked.
        asked: u64,
        /// The tightest physical link on the widest shortest path, and its free bandwidth
        /// in the direction of travel, if there is a path at all.
        bottleneck: Option<(usize, usize, u64)>,
    },
    /// A host of every feasible path cannot forward virtual link `link`'s
    /// guaranteed rate: its CPU budget has too little left.
    Forwarding {
        /// Virtual link.
        link: usize,
        /// The host.
        host: usize,
        /// Cores the link would take from the host's budget there.
        asked: f64,
        /// Cores free in that budget.
        free: f64,
    },
}

/// Search parameters.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Root hosts tried (restarts).
    pub roots: usize,
    /// Candidate hosts tried per virtual node before giving up on a root.
    pub candidates: usize,
    /// Shortest feasible paths considered per virtual link.
    pub k_paths: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { roots: 8, candidates: 4, k_paths: 3 }
    }
}

fn fits(p: &PNet, v: &VNet, node: usize, host: usize) -> bool {
    p.eligible[host]
        && p.cpu[host] + 1e-9 >= v.cpu[node]
        && p.budget_free(host) + 1e-9 >= v.cpu[node]
        && p.mem[host] >= v.mem[node]
        && p.slots[host] >= v.slot_demand(node)
        && p.ports[host] >= v.port_demand(node)
}

/// Hop distances from `src` over links with at least `bw` free (leaving each host).
fn bfs_dist(p: &PNet, v: &VNet, vlink: usize, src: usize, bw: u64, dist: &mut Vec<u32>, queue: &mut VecDeque<usize>) {
    dist.clear();
    dist.resize(p.len(), u32::MAX);
    dist[src] = 0;
    queue.clear();
    queue.push_back(src);
    while let Some(h) = queue.pop_front() {
        for &(n, l) in &p.adj[h] {
            if dist[n] == u32::MAX && p.free(l, h) >= bw && v.allows(vlink, l) {
                dist[n] = dist[h] + 1;
                queue.push_back(n);
            }
        }
    }
}

/// The shortest path from `a` to `b` with `bw` free on every hop, avoiding the
/// given links; ties broken toward wider links. `None` if there is none.
fn shortest_path(
    p: &PNet,
    ok: &dyn Fn(usize) -> bool,
    a: usize,
    b: usize,
    bw: u64,
    banned: &[usize],
    banned_nodes: &[usize],
) -> Option<Vec<(usize, usize)>> {
    if a == b {
        return Some(Vec::new());
    }
    let n = p.len();
    let mut dist = vec![u32::MAX; n];
    let mut prev: Vec<Option<(usize, usize)>> = vec![None; n];
    let mut width = vec![0u64; n];
    dist[a] = 0;
    width[a] = u64::MAX;
    let mut q = VecDeque::from([a]);
    while let Some(h) = q.pop_front() {
        if h == b {
            break;
        }
        for &(m, l) in &p.adj[h] {
            if banned.contains(&l) || banned_nodes.contains(&m) || !ok(l) {
                continue;
            }
            let f = p.free(l, h);
            if f < bw {
                continue;
            }
            let w = width[h].min(f);
            if dist[m] == u32::MAX {
                dist[m] = dist[h] + 1;
                prev[m] = Some((l, h));
                width[m] = w;
                q.push_back(m);
            } else if dist[m] == dist[h] + 1 && w > width[m] {
                prev[m] = Some((l, h));
                width[m] = w;
            }
        }
    }
    if dist[b] == u32::MAX {
        return None;
    }
    let mut path = Vec::new();
    let mut cur = b;
    while let Some((l, from)) = prev[cur] {
        path.push((l, from));
        cur = from;
    }
    path.reverse();
    Some(path)
}

/// Up to `k` loop-free shortest feasible paths (Yen's algorithm over hop count).
fn k_shortest(p: &PNet, ok: &dyn Fn(usize) -> bool, a: usize, b: usize, bw: u64, k: usize) -> Vec<Vec<(usize, usize)>> {
    let Some(first) = shortest_path(p, ok, a, b, bw, &[], &[]) else { return Vec::new() };
    let mut found = vec![first];
    let mut cands: Vec<Vec<(usize, usize)>> = Vec::new();
    while found.len() < k {
        let last = found.last().expect("at least one").clone();
        for i in 0..last.len() {
            let spur = last[i].1;
            let root = &last[..i];
            let banned: Vec<usize> = found.iter().filter(|f| f.len() > i && f[..i] == *root).map(|f| f[i].0).collect();
            let banned_nodes: Vec<usize> = root.iter().map(|(_, from)| *from).collect();
            if let Some(tail) = shortest_path(p, ok, spur, b, bw, &banned, &banned_nodes) {
                let mut full = root.to_vec();
                full.extend(tail);
                if !found.contains(&full) && !cands.contains(&full) {
                    cands.push(full);
                }
            }
        }
        if cands.is_empty() {
            break;
        }
        // Shortest first; wider bottleneck on ties.
        let bottleneck = |path: &Vec<(usize, usize)>| path.iter().map(|&(l, f)| p.free(l, f)).min().unwrap_or(u64::MAX);
        let best = (0..cands.len())
            .min_by_key(|&i| (cands[i].len(), std::cmp::Reverse(bottleneck(&cands[i]))))
            .expect("non-empty");
        found.push(cands.swap_remove(best));
    }
    found
}

/// Takes `bw` both ways along a path on the working copy.
fn take_path(p: &mut PNet, path: &[(usize, usize)], bw: u64) {
    for &(l, from) in path {
        let (a, b) = p.links[l];
        p.take(l, from, bw);
        let back = if from == a { b } else { a };
        p.take(l, back, bw);
    }
}

/// Resource rank of a host: free CPU times free bandwidth of its links.
fn rank(p: &PNet, h: usize) -> f64 {
    let bw: u64 = p.adj[h].iter().map(|&(_, l)| p.free(l, h)).sum();
    p.cpu[h].max(0.0) * (bw as f64 + 1.0)
}

/// Breadth-first order of the virtual nodes from `root`, heavier neighbours first;
/// disconnected parts follow, each from its heaviest node.
fn bfs_order(v: &VNet, root: usize) -> Vec<usize> {
    let n = v.len();
    let mut adj: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    for &(a, b, bw) in &v.links {
        adj[a].push((b, bw));
        adj[b].push((a, bw));
    }
    let weight = |u: usize| v.cpu[u] + adj[u].iter().map(|&(_, b)| b as f64).sum::<f64>();
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut starts: Vec<usize> = (0..n).collect();
    starts.sort_by(|&x, &y| weight(y).total_cmp(&weight(x)));
    starts.retain(|&s| s != root);
    starts.insert(0, root);
    for s in starts {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        let mut q = VecDeque::from([s]);
        while let Some(u) = q.pop_front() {
            order.push(u);
            let mut next: Vec<(usize, u64)> = adj[u].iter().copied().filter(|&(w, _)| !seen[w]).collect();
            next.sort_by(|x, y| weight(y.0).total_cmp(&weight(x.0)));
            for (w, _) in next {
                if !seen[w] {
                    seen[w] = true;
                    q.push_back(w);
                }
            }
        }
    }
    order
}

/// Embeds `v` into `p` (not modified). The cheapest of several restarts wins.
pub fn embed(p: &PNet, v: &VNet, opts: &Options) -> Result<Embedding, Refusal> {
    if v.is_empty() {
        return Ok(Embedding::default());
    }
    // Per-node feasibility first: a clear reason beats a failed search.
    for u in 0..v.len() {
        let cands: Vec<usize> = match v.pins[u] {
            Some(h) => vec![h],
            None => (0..p.len()).filter(|&h| p.eligible[h]).collect(),
        };
        if !cands.iter().any(|&h| fits(p, v, u, h)) {
            return Err(node_refusal(p, v, u, cands));
        }
    }
    if !v.share_hosts {
        // Pinned nodes go where they are told; the others need a host each.
        let hosts = (0..p.len()).filter(|&h| p.eligible[h] && p.slots[h] >= 1).count();
        let mut pinned: Vec<usize> = v.pins.iter().flatten().copied().collect();
        pinned.sort_unstable();
        pinned.dedup();
        let need = v.pins.iter().filter(|p| p.is_none()).count() + pinned.len();
        if hosts < need {
            return Err(Refusal::NoHost {
                node: v.len() - 1,
                resource: "distinct hosts",
                asked: v.len() as f64,
                best_free: hosts as f64,
                candidates: (0..p.len()).filter(|&h| p.eligible[h]).collect(),
            });
        }
    }
    // Root: the heaviest virtual node (or a pinned one, which leaves no choice).
    let weight = |u: usize| v.cpu[u] + v.links.iter().filter(|l| l.0 == u || l.1 == u).map(|l| l.2 as f64).sum::<f64>();
    let root = (0..v.len())
        .filter(|&u| v.pins[u].is_some())
        .max_by(|&a, &b| weight(a).total_cmp(&weight(b)))
        .unwrap_or_else(|| (0..v.len()).max_by(|&a, &b| weight(a).total_cmp(&weight(b))).expect("non-empty"));
    let order = bfs_order(v, root);
    let mut roots: Vec<usize> = match v.pins[root] {
        Some(h) => vec![h],
        None => (0..p.len()).filter(|&h| fits(p, v, root, h)).collect(),
    };
    roots.sort_by(|&a, &b| rank(p, b).total_cmp(&rank(p, a)));
    roots.truncate(opts.roots.max(1));
    let mut best: Option<(f64, Embedding)> = None;
    let mut first_refusal = None;
    for &r in &roots {
        match place_from(p, v, &order, r, opts) {
            Ok(e) => {
                let c = e.cost(v);
                if best.as_ref().is_none_or(|(bc, _)| c < *bc) {
                    best = Some((c, e));
                }
            }
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    best.map(|(_, e)| e).ok_or_else(|| {
        first_refusal.unwrap_or(Refusal::NoHost {
            node: root,
            resource: "cpu",
            asked: v.cpu[root],
            best_free: 0.0,
            candidates: Vec::new(),
        })
    })
}

/// Places every virtual node in `order`, the first on `root_host`.
fn place_from(p: &PNet, v: &VNet, order: &[usize], root_host: usize, opts: &Options) -> Result<Embedding, Refusal> {
    let mut w = p.clone();
    let mut hosts: Vec<Option<usize>> = vec![None; v.len()];
    let mut paths: Vec<Option<Vec<(usize, usize)>>> = vec![None; v.links.len()];
    let mut used = vec![false; p.len()];
    let mut dist = Vec::new();
    let mut queue = VecDeque::new();
    for (step, &u) in order.iter().enumerate() {
        // Links from u to already placed neighbours.
        let mine: Vec<usize> = (0..v.links.len())
            .filter(|&l| {
                let (a, b, _) = v.links[l];
                (a == u && hosts[b].is_some()) || (b == u && hosts[a].is_some())
            })
            .collect();
        let mut cands: Vec<(f64, usize)> = Vec::new();
        if step == 0 {
            cands.push((0.0, root_host));
        } else {
            let pool: Vec<usize> = match v.pins[u] {
                Some(h) => vec![h],
                None => (0..p.len()).collect(),
            };
            // Cost of each candidate: bandwidth x hops to every placed neighbour.
            let mut cost = vec![0.0f64; p.len()];
            for &l in &mine {
                let (a, b, bw) = v.links[l];
                let other = hosts[if a == u { b } else { a }].expect("placed");
                bfs_dist(&w, v, l, other, bw, &mut dist, &mut queue);
                for h in 0..p.len() {
                    cost[h] += if dist[h] == u32::MAX { f64::INFINITY } else { bw as f64 * f64::from(dist[h]) };
                }
            }
            let mut fitting = Vec::new();
            for h in pool {
                if (!v.share_hosts && used[h] && v.pins[u].is_none()) || !fits(&w, v, u, h) {
                    continue;
                }
                fitting.push(h);
                if !cost[h].is_finite() {
                    continue;
                }
                // Equal cost: prefer the host with more free resources.
                let tie = -rank(&w, h) * 1e-12;
                cands.push((cost[h] + tie, h));
            }
            if fitting.is_empty() {
                // Nothing left that fits, given what this slice already took.
                let pool: Vec<usize> = match v.pins[u] {
                    Some(h) => vec![h],
                    None => (0..p.len()).filter(|&h| p.eligible[h] && (v.share_hosts || !used[h])).collect(),
                };
                return Err(node_refusal(&w, v, u, pool));
            }
            if cands.is_empty()
                && let (Some(&h), Some(&l)) = (fitting.first(), mine.first())
            {
                // Hosts would fit, but none is reachable with enough bandwidth.
                let (a, b, bw) = v.links[l];
                let other = hosts[if a == u { b } else { a }].expect("placed");
                let (ha, hb) = if a == u { (h, other) } else { (other, h) };
                return Err(bandwidth_refusal(&w, v, l, ha, hb, bw));
            }
            cands.sort_by(|a, b| a.0.total_cmp(&b.0));
            cands.truncate(opts.candidates.max(1));
        }
        let mut placed = false;
        let mut refusal = None;
        'cand: for &(_, h) in &cands {
            // Map the links to placed neighbours; undo on failure. The node's
            // own CPU comes out of its host's budget first.
            let snapshot = w.clone();
            w.take_budget(h, v.cpu[u]);
            let mut got: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
            for &l in &mine {
                let (a, b, bw) = v.links[l];
                let (ha, hb) = if a == u { (h, hosts[b].expect("placed")) } else { (hosts[a].expect("placed"), h) };
                // A path kept from before, if it still has room; else the k shortest.
                let kept = v.keep.get(l).cloned().flatten().filter(|path| {
                    path.first().is_none_or(|&(_, from)| from == ha)
                        && path.iter().all(|&(link, from)| w.free(link, from) >= bw && v.allows(l, link))
                });
                let ok = |link: usize| v.allows(l, link);
                let options = match kept {
                    Some(path) => vec![path],
                    None => k_shortest(&w, &ok, ha, hb, bw, opts.k_paths.max(1)),
                };
                if options.is_empty() {
                    refusal.get_or_insert_with(|| bandwidth_refusal(&w, v, l, ha, hb, bw));
                    w = snapshot;
                    continue 'cand;
                }
                // Shortest first; among equals the widest bottleneck (Yen
                // returns them ordered); the first whose hosts can forward it.
                let mut short = None;
                let mut chosen = None;
                for path in options {
                    match w.path_work(v, l, ha, &path) {
                        Ok(work) => {
                            chosen = Some((path, work));
                            break;
                        }
                        Err(e) => {
                            short.get_or_insert(e);
                        }
                    }
                }
                match chosen {
                    Some((path, work)) => {
                        take_path(&mut w, &path, bw);
                        for (b, cores) in work {
                            w.budget[b] -= cores;
                        }
                        got.push((l, path));
                    }
                    None => {
                        let (host, asked, free) = short.expect("a path was refused for forwarding");
                        refusal.get_or_insert(Refusal::Forwarding { link: l, host, asked, free });
                        w = snapshot;
                        continue 'cand;
                    }
                }
            }
            w.cpu[h] -= v.cpu[u];
            w.mem[h] = w.mem[h].saturating_sub(v.mem[u]);
            w.slots[h] = w.slots[h].saturating_sub(v.slot_demand(u));
            w.ports[h] = w.ports[h].saturating_sub(v.port_demand(u));
            used[h] = true;
            hosts[u] = Some(h);
            for (l, path) in got {
                paths[l] = Some(path);
            }
            placed = true;
            break;
        }
        if !placed {
            return Err(refusal.unwrap_or(Refusal::NoHost {
                node: u,
                resource: if v.share_hosts { "cpu" } else { "distinct hosts" },
                asked: v.cpu[u],
                best_free: 0.0,
                candidates: cands.iter().map(|c| c.1).collect(),
            }));
        }
    }
    // Links between nodes in different components of the virtual graph are all
    // mapped above (every link is mapped when its second end is placed).
    Ok(Embedding {
        hosts: hosts.into_iter().map(|h| h.expect("all placed")).collect(),
        paths: paths.into_iter().map(|p| p.unwrap_or_default()).collect(),
    })
}

/// Why no host among `cands` can take virtual node `u`: the first resource none
/// of them has enough of.
fn node_refusal(p: &PNet, v: &VNet, u: usize, cands: Vec<usize>) -> Refusal {
    let best = |f: &dyn Fn(usize) -> f64| cands.iter().map(|&h| f(h)).fold(0.0, f64::max);
    let cpu_free = |h: usize| p.cpu[h].min(p.budget_free(h));
    let (resource, asked, best_free) = if !cands.iter().any(|&h| cpu_free(h) + 1e-9 >= v.cpu[u]) {
        ("cpu", v.cpu[u], best(&|h| cpu_free(h)))
    } else if !cands.iter().any(|&h| p.mem[h] >= v.mem[u]) {
        ("memory", v.mem[u] as f64, best(&|h| p.mem[h] as f64))
    } else if !cands.iter().any(|&h| p.ports[h] >= v.port_demand(u)) {
        ("ports", f64::from(v.port_demand(u)), best(&|h| f64::from(p.ports[h])))
    } else if !cands.iter().any(|&h| p.slots[h] >= v.slot_demand(u)) {
        ("sliver slots", 1.0, best(&|h| f64::from(p.slots[h])))
    } else {
        ("distinct hosts", 1.0, 0.0)
    };
    Refusal::NoHost { node: u, resource, asked, best_free, candidates: cands }
}

fn bandwidth_refusal(p: &PNet, v: &VNet, l: usize, a: usize, b: usize, bw: u64) -> Refusal {
    // The widest shortest path regardless of bandwidth tells where it falls short.
    let ok = |link: usize| v.allows(l, link);
    let bottleneck = shortest_path(p, &ok, a, b, 0, &[], &[])
        .and_then(|path| path.iter().map(|&(link, from)| (link, from, p.free(link, from))).min_by_key(|x| x.2));
    Refusal::Bandwidth { link: l, from: a, to: b, asked: bw, bottleneck }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line 0 - 1 - 2 - 3 and a shortcut 0 - 3 that is narrow.
    fn net() -> PNet {
        let mut p = PNet::new(4);
        p.cpu = vec![10.0; 4];
        p.add_link(0, 1, 100);
        p.add_link(1, 2, 100);
        p.add_link(2, 3, 100);
        p.add_link(0, 3, 10);
        p
    }

    fn req(bw: u64) -> VNet {
        VNet {
            cpu: vec![1.0, 1.0],
            mem: vec![0, 0],
            pins: vec![Some(0), Some(3)],
            links: vec![(0, 1, bw)],
            ..VNet::default()
        }
    }

    #[test]
    fn takes_the_short_path_when_it_fits_and_the_long_one_otherwise() {
        let p = net();
        let e = embed(&p, &req(5), &Options::default()).unwrap();
        assert_eq!(e.paths[0].len(), 1);
        let e = embed(&p, &req(50), &Options::default()).unwrap();
        assert_eq!(e.paths[0].len(), 3);
        assert!(matches!(embed(&p, &req(500), &Options::default()), Err(Refusal::Bandwidth { .. })));
    }

    #[test]
    fn reserve_and_release_are_inverse() {
        let mut p = net();
        let before = (p.cpu.clone(), p.bw.clone(), p.slots.clone());
        let v = req(50);
        let e = embed(&p, &v, &Options::default()).unwrap();
        p.reserve(&v, &e);
        assert_ne!(p.bw, before.1);
        p.release(&v, &e);
        assert_eq!((p.cpu.clone(), p.bw.clone(), p.slots.clone()), before);
    }

    #[test]
    fn unpinned_nodes_land_close_together() {
        // A star of 3 virtual nodes on a 10-host ring: hosts should be neighbours.
        let mut p = PNet::new(10);
        p.cpu = vec![10.0; 10];
        for i in 0..10 {
            p.add_link(i, (i + 1) % 10, 100);
        }
        let v = VNet {
            cpu: vec![1.0; 3],
            mem: vec![0; 3],
            pins: vec![None; 3],
            links: vec![(0, 1, 10), (0, 2, 10)],
            ..VNet::default()
        };
        let e = embed(&p, &v, &Options::default()).unwrap();
        assert_eq!(e.paths.iter().map(|p| p.len()).sum::<usize>(), 2, "{e:?}");
    }

    #[test]
    fn refusals_say_which_resource() {
        let p = net();
        let mut v = req(5);
        v.cpu[1] = 50.0;
        match embed(&p, &v, &Options::default()) {
            Err(Refusal::NoHost { node: 1, resource: "cpu", .. }) => {}
            other => panic!("{other:?}"),
        }
        match embed(&p, &req(500), &Options::default()) {
            Err(Refusal::Bandwidth { bottleneck: Some((3, 0, 10)), asked: 500, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
