//! Which boxes of a chain can touch a given box: an index over the boxes' bounds, so a
//! rule is compared only with the earlier rules whose bounds overlap its own in every
//! dimension, not with every earlier rule.
//!
//! Each of the selective dimensions (source, destination, source port, destination port,
//! ICMP type) has its own one-dimensional interval index. A query counts, in each of
//! them, the active boxes whose interval overlaps the query's (two prefix sums), then
//! enumerates the boxes of the dimension with the fewest and checks every dimension
//! exactly. Boxes are made active in chain order, so the shadowing pass sees only the
//! earlier lines; the walks see every line. A chain of few boxes is scanned instead.

use super::{overlaps, Bounds};

fn empty(b: &Bounds) -> bool {
    b.iter().any(|(lo, hi)| lo > hi)
}

/// The dimensions indexed, first the most selective in practice. Interface atoms and
/// conntrack states take a handful of values and seldom tell rules apart.
const INDEXED: [usize; 5] = [0, 3, 1, 2, 4];

/// A count of candidates below which no other dimension is worth counting.
const FEW: usize = 4;

/// Up to this many boxes, a scan is cheaper than building the index. Lower in tests, so
/// the small random policies the analysis is tested on go through the index too.
const SCAN: usize = if cfg!(test) { 4 } else { 48 };

/// Boxes of one protocol class of a chain, each with its line, in line order.
pub(super) struct BoxIndex {
    boxes: Vec<(usize, Bounds)>,
    /// The boxes `..active` are active.
    active: usize,
    dims: Vec<DimIndex>,
}

impl BoxIndex {
    /// An index of `boxes` (ascending line numbers), none of them active yet. A box
    /// empty in some dimension touches nothing and is left out.
    pub(super) fn new(mut boxes: Vec<(usize, Bounds)>) -> BoxIndex {
        debug_assert!(boxes.windows(2).all(|w| w[0].0 <= w[1].0));
        boxes.retain(|(_, b)| !empty(b));
        let dims = if boxes.len() <= SCAN {
            Vec::new()
        } else {
            INDEXED
                .iter()
                .map(|&d| DimIndex::new(boxes.iter().map(|(_, b)| b[d])))
                .collect()
        };
        BoxIndex {
            boxes,
            active: 0,
            dims,
        }
    }

    /// Makes the boxes of every line before `line` active.
    pub(super) fn activate_before(&mut self, line: usize) {
        while self.active < self.boxes.len() && self.boxes[self.active].0 < line {
            for dim in &mut self.dims {
                dim.activate(self.active);
            }
            self.active += 1;
        }
    }

    /// The lines of the active boxes whose bounds overlap `q` in every dimension,
    /// ascending, into `out` (cleared first).
    pub(super) fn overlapping(&self, q: &Bounds, out: &mut Vec<usize>) {
        out.clear();
        if self.active == 0 || empty(q) {
            return;
        }
        if self.dims.is_empty() {
            let near = self.boxes[..self.active]
                .iter()
                .filter(|(_, b)| overlaps(q, b));
            out.extend(near.map(|(line, _)| *line));
            out.dedup();
            return;
        }
        let mut best: Option<(usize, usize, (usize, usize))> = None;
        for (k, dim) in self.dims.iter().enumerate() {
            let window = dim.window(q[INDEXED[k]]);
            let count = dim.count(window);
            if best.is_none_or(|(c, _, _)| count < c) {
                best = Some((count, k, window));
            }
            if count <= FEW {
                break;
            }
        }
        let Some((count, k, window)) = best else {
            return;
        };
        if count == 0 {
            return;
        }
        self.dims[k].each(window, |id| {
            let (line, b) = &self.boxes[id];
            if overlaps(q, b) {
                out.push(*line);
            }
        });
        out.sort_unstable();
        out.dedup();
    }
}

/// The intervals of one dimension, by rank of their bounds among every bound of that
/// dimension: a Fenwick tree of active intervals per lower bound and per upper bound
/// (to count those overlapping a query), and a max segment tree of upper bounds over the
/// intervals in order of their lower bound (to list them).
struct DimIndex {
    /// Every distinct bound, ascending.
    coords: Vec<u128>,
    /// Per interval: the rank of its lower and upper bound, and its position in `by_lo`.
    lo: Vec<u32>,
    hi: Vec<u32>,
    pos: Vec<u32>,
    /// Interval ids in order of their lower bound, and those lower bounds' ranks.
    by_lo: Vec<u32>,
    lo_sorted: Vec<u32>,
    /// Leaves from `size`: upper-bound rank + 1 of the active interval at that position
    /// of `by_lo`, 0 when inactive; inner nodes hold their children's maximum.
    tree: Vec<u32>,
    size: usize,
    lo_count: Fenwick,
    hi_count: Fenwick,
}

impl DimIndex {
    fn new(intervals: impl Iterator<Item = (u128, u128)> + Clone) -> DimIndex {
        let mut coords: Vec<u128> = intervals.clone().flat_map(|(l, h)| [l, h]).collect();
        coords.sort_unstable();
        coords.dedup();
        let rank = |v: u128| coords.partition_point(|c| *c < v) as u32;
        let (lo, hi): (Vec<u32>, Vec<u32>) = intervals.map(|(l, h)| (rank(l), rank(h))).unzip();
        let n = lo.len();
        let mut by_lo: Vec<u32> = (0..n as u32).collect();
        by_lo.sort_by_key(|&id| lo[id as usize]);
        let lo_sorted: Vec<u32> = by_lo.iter().map(|&id| lo[id as usize]).collect();
        let mut pos = vec![0; n];
        for (p, &id) in by_lo.iter().enumerate() {
            pos[id as usize] = p as u32;
        }
        let size = n.next_power_of_two();
        let ranks = coords.len();
        DimIndex {
            coords,
            lo,
            hi,
            pos,
            by_lo,
            lo_sorted,
            tree: vec![0; 2 * size],
            size,
            lo_count: Fenwick::new(ranks),
            hi_count: Fenwick::new(ranks),
        }
    }

    fn activate(&mut self, id: usize) {
        let value = self.hi[id] + 1;
        let mut node = self.size + self.pos[id] as usize;
        while node > 0 && self.tree[node] < value {
            self.tree[node] = value;
            node /= 2;
        }
        self.lo_count.add(self.lo[id] as usize);
        self.hi_count.add(self.hi[id] as usize);
    }

    /// For a query interval: the ranks below which an interval's lower bound must be
    /// (`lo <= qhi`), and from which its upper bound must be (`hi >= qlo`).
    fn window(&self, (qlo, qhi): (u128, u128)) -> (usize, usize) {
        (
            self.coords.partition_point(|c| *c <= qhi),
            self.coords.partition_point(|c| *c < qlo),
        )
    }

    /// How many active intervals overlap the query: those starting at or before its end,
    /// less those ending before its start (which start before it too).
    fn count(&self, (below, from): (usize, usize)) -> usize {
        self.lo_count.prefix(below) - self.hi_count.prefix(from)
    }

    /// Calls `f` with every active interval overlapping the query.
    fn each(&self, (below, from): (usize, usize), mut f: impl FnMut(usize)) {
        let end = self.lo_sorted.partition_point(|r| (*r as usize) < below);
        self.collect(1, 0, self.size, end, from as u32 + 1, &mut f);
    }

    fn collect(
        &self,
        node: usize,
        start: usize,
        stop: usize,
        end: usize,
        min: u32,
        f: &mut impl FnMut(usize),
    ) {
        if start >= end || self.tree[node] < min {
            return;
        }
        if stop - start == 1 {
            f(self.by_lo[start] as usize);
            return;
        }
        let mid = (start + stop) / 2;
        self.collect(2 * node, start, mid, end, min, f);
        self.collect(2 * node + 1, mid, stop, end, min, f);
    }
}

/// Counts per rank, with prefix sums.
struct Fenwick(Vec<usize>);

impl Fenwick {
    fn new(n: usize) -> Fenwick {
        Fenwick(vec![0; n + 1])
    }

    fn add(&mut self, at: usize) {
        let mut i = at + 1;
        while i < self.0.len() {
            self.0[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// The count of ranks `..end`.
    fn prefix(&self, end: usize) -> usize {
        let mut i = end;
        let mut sum = 0;
        while i > 0 {
            sum += self.0[i];
            i &= i - 1;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::DIMS;

    /// The index lists exactly what a scan of the active boxes finds.
    #[test]
    fn lists_what_a_scan_finds() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50 {
            let n = (next() % 200) as usize;
            let mut boxes = Vec::new();
            for line in 0..n {
                let mut b = [(0, 0); DIMS];
                for d in b.iter_mut() {
                    let lo = u128::from(next() % 40);
                    *d = (lo, lo + u128::from(next() % 12));
                }
                if next() % 5 == 0 {
                    b[0] = (0, u128::MAX);
                }
                boxes.push((line, b));
            }
            let mut index = BoxIndex::new(boxes.clone());
            let mut out = Vec::new();
            for i in 0..=n {
                index.activate_before(i);
                let mut q = [(0, 0); DIMS];
                for d in q.iter_mut() {
                    let lo = u128::from(next() % 45);
                    *d = (lo, lo + u128::from(next() % 20));
                }
                index.overlapping(&q, &mut out);
                let want: Vec<usize> = boxes[..i]
                    .iter()
                    .filter(|(_, b)| overlaps(&q, b))
                    .map(|(l, _)| *l)
                    .collect();
                assert_eq!(out, want);
            }
        }
    }
}
