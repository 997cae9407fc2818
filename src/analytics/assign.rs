//! Matching tracks to detections: optimal (Hungarian, per connected part of the gate graph) or greedy by similarity.
//!
//! Only pairs that passed the caller's gate are candidates, each with a `gain` ≥ 0 (the
//! similarity above the gate). [`Method::Optimal`] maximises the total gain, leaving rows
//! and columns unmatched where no candidate pair is worth it; this is what ByteTrack's
//! `lapjv(cost_limit)` computes. Candidates are sparse (an object overlaps one or two
//! others at most), so the problem splits into connected parts that are solved
//! separately: the same optimum, at a cost that grows with the size of the largest
//! cluster of overlapping objects rather than with the cube of the number of objects.
//!
//! [`Method::Greedy`] takes the best remaining pair first. It differs from the optimum only
//! where one object is the best match of two others, which is exactly when tracks are
//! about to swap; it is the cheap choice for `accuracy: low`.

/// A pair that passed the gate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub row: usize,
    pub col: usize,
    /// How much better than the gate the pair is; ≥ 0.
    pub gain: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Optimal,
    Greedy,
}

/// Pairs `(row, col)`, each row and each column at most once, sorted by row.
/// Rows are `0..rows`, columns `0..cols`.
pub fn assign(rows: usize, cols: usize, candidates: &[Candidate], method: Method) -> Vec<(usize, usize)> {
    let mut pairs = match method {
        Method::Greedy => greedy(rows, cols, candidates),
        Method::Optimal => optimal(rows, cols, candidates),
    };
    pairs.sort_unstable();
    pairs
}

fn greedy(rows: usize, cols: usize, candidates: &[Candidate]) -> Vec<(usize, usize)> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| b.gain.total_cmp(&a.gain).then(a.row.cmp(&b.row)).then(a.col.cmp(&b.col)));
    let (mut row_used, mut col_used) = (vec![false; rows], vec![false; cols]);
    let mut out = Vec::new();
    for c in order {
        if !row_used[c.row] && !col_used[c.col] {
            row_used[c.row] = true;
            col_used[c.col] = true;
            out.push((c.row, c.col));
        }
    }
    out
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

fn optimal(rows: usize, cols: usize, candidates: &[Candidate]) -> Vec<(usize, usize)> {
    // Union-find over rows (0..rows) and columns (rows..rows+cols).
    let mut parent: Vec<usize> = (0..rows + cols).collect();
    for c in candidates {
        let (a, b) = (find(&mut parent, c.row), find(&mut parent, rows + c.col));
        if a != b {
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut parts: std::collections::BTreeMap<usize, Vec<&Candidate>> = Default::default();
    for c in candidates {
        let root = find(&mut parent, c.row);
        parts.entry(root).or_default().push(c);
    }
    let mut out = Vec::new();
    for part in parts.values() {
        if part.len() == 1 {
            out.push((part[0].row, part[0].col));
            continue;
        }
        let mut rs: Vec<usize> = part.iter().map(|c| c.row).collect();
        let mut cs: Vec<usize> = part.iter().map(|c| c.col).collect();
        rs.sort_unstable();
        rs.dedup();
        cs.sort_unstable();
        cs.dedup();
        // The solver wants no more rows than columns: transpose when needed.
        let transpose = rs.len() > cs.len();
        let (n, m) = if transpose { (cs.len(), rs.len()) } else { (rs.len(), cs.len()) };
        // Non-candidates cost 0, like leaving both ends unmatched; candidates a hair below
        // their gain so that a pair exactly at the gate still beats no pair.
        let mut cost = vec![0.0; n * m];
        let mut allowed = vec![false; n * m];
        for c in part {
            let (r, k) = (rs.binary_search(&c.row).unwrap_or(0), cs.binary_search(&c.col).unwrap_or(0));
            let (i, j) = if transpose { (k, r) } else { (r, k) };
            cost[i * m + j] = -(c.gain + 1e-9);
            allowed[i * m + j] = true;
        }
        for (i, j) in hungarian(&cost, n, m).into_iter().enumerate() {
            if allowed[i * m + j] {
                out.push(if transpose { (rs[j], cs[i]) } else { (rs[i], cs[j]) });
            }
        }
    }
    out
}

/// Minimum-cost assignment of `n` rows to distinct columns among `m ≥ n` (row-major
/// `cost`); returns each row's column. Kuhn–Munkres with potentials, O(n²·m).
fn hungarian(cost: &[f64], n: usize, m: usize) -> Vec<usize> {
    debug_assert!(n <= m && cost.len() == n * m);
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    // p[j]: the row (1-based) holding column j; way[j]: previous column on the augmenting path.
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![0.0; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        minv.iter_mut().for_each(|x| *x = f64::INFINITY);
        used.iter_mut().for_each(|x| *x = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=m {
                if !used[j] {
                    let cur = cost[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![0; n];
    for j in 1..=m {
        if p[j] != 0 {
            out[p[j] - 1] = j - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn c(row: usize, col: usize, gain: f64) -> Candidate {
        Candidate { row, col, gain }
    }

    fn total(pairs: &[(usize, usize)], cands: &[Candidate]) -> f64 {
        pairs.iter().map(|&(r, k)| cands.iter().find(|c| c.row == r && c.col == k).unwrap().gain).sum()
    }

    #[test]
    fn optimal_resolves_what_greedy_gets_wrong() {
        // Row 0 is the best match of both columns; greedy gives it column 0 and row 1 starves.
        let cands = [c(0, 0, 0.9), c(0, 1, 0.8), c(1, 0, 0.7)];
        assert_eq!(assign(2, 2, &cands, Method::Greedy), vec![(0, 0)]);
        assert_eq!(assign(2, 2, &cands, Method::Optimal), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn unmatched_rows_and_columns_and_pairs_at_the_gate() {
        assert!(assign(3, 3, &[], Method::Optimal).is_empty());
        assert_eq!(assign(3, 1, &[c(2, 0, 0.0)], Method::Optimal), vec![(2, 0)]);
        // More rows than columns in one part (transposed internally).
        let cands = [c(0, 0, 0.5), c(1, 0, 0.6), c(2, 0, 0.1)];
        assert_eq!(assign(3, 1, &cands, Method::Optimal), vec![(1, 0)]);
        // Two independent parts.
        let cands = [c(0, 1, 0.5), c(1, 1, 0.4), c(1, 0, 0.45), c(3, 2, 0.2)];
        assert_eq!(assign(4, 3, &cands, Method::Optimal), vec![(0, 1), (1, 0), (3, 2)]);
    }

    /// Best total gain by trying every matching (small sizes only).
    fn brute(rows: usize, cols: usize, cands: &[Candidate]) -> f64 {
        fn go(r: usize, rows: usize, used: &mut Vec<bool>, cands: &[Candidate]) -> f64 {
            if r == rows {
                return 0.0;
            }
            let mut best = go(r + 1, rows, used, cands);
            for c in cands.iter().filter(|c| c.row == r) {
                if used[c.col] {
                    continue;
                }
                used[c.col] = true;
                best = best.max(c.gain + go(r + 1, rows, used, cands));
                used[c.col] = false;
            }
            best
        }
        go(0, rows, &mut vec![false; cols], cands)
    }

    #[test]
    fn optimal_matches_brute_force_on_random_sparse_problems() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..500 {
            let (rows, cols) = (rng.gen_range(0..6), rng.gen_range(0..6));
            let mut cands = Vec::new();
            for r in 0..rows {
                for k in 0..cols {
                    if rng.gen_bool(0.4) {
                        cands.push(c(r, k, rng.gen_range(0.0..1.0)));
                    }
                }
            }
            let pairs = assign(rows, cols, &cands, Method::Optimal);
            let mut rs: Vec<_> = pairs.iter().map(|p| p.0).collect();
            let mut ks: Vec<_> = pairs.iter().map(|p| p.1).collect();
            rs.dedup();
            ks.sort_unstable();
            ks.dedup();
            assert_eq!((rs.len(), ks.len()), (pairs.len(), pairs.len()), "each row and column once");
            let want = brute(rows, cols, &cands);
            assert!((total(&pairs, &cands) - want).abs() < 1e-6, "{cands:?}: got {pairs:?}, best total {want}");
            assert!(total(&assign(rows, cols, &cands, Method::Greedy), &cands) <= want + 1e-9);
        }
    }
}
