//! Span arithmetic for the recorded-time index: merging pieces closer than a tolerance, clipping, cutting a window out.

use super::{Nanos, Span};

/// Whether `b` (starting at or after `a`'s start) joins `a`: closer than `tol`.
fn joins(a: &Span, b: &Span, tol: Nanos) -> bool {
    b.start < a.end.saturating_add(tol)
}

/// Sorted, disjoint spans covering `pieces`, pieces closer than `tol` joined into one.
/// Empty pieces carry no media and are dropped.
pub fn merge(pieces: impl IntoIterator<Item = Span>, tol: Nanos) -> Vec<Span> {
    let mut v: Vec<Span> = pieces.into_iter().filter(|p| p.end > p.start).collect();
    v.sort_unstable_by_key(|s| (s.start, s.end));
    let mut out: Vec<Span> = Vec::with_capacity(v.len());
    for s in v {
        match out.last_mut() {
            Some(last) if joins(last, &s, tol) => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// `spans` (sorted, disjoint) restricted to `[start, end)`.
pub fn clip(spans: impl IntoIterator<Item = Span>, start: Nanos, end: Nanos) -> Vec<Span> {
    spans
        .into_iter()
        .filter(|s| s.start < end && s.end > start)
        .map(|s| Span { start: s.start.max(start), end: s.end.min(end) })
        .filter(|s| s.end > s.start)
        .collect()
}

/// The parts of `span` before and after `window`.
pub fn outside(span: Span, window: Span) -> impl Iterator<Item = Span> {
    let before = Span { start: span.start, end: span.end.min(window.start) };
    let after = Span { start: span.start.max(window.end), end: span.end };
    [before, after].into_iter().filter(|s| s.end > s.start)
}

/// `span` widened by `by` on both sides.
pub fn widen(span: Span, by: Nanos) -> Span {
    Span { start: span.start.saturating_sub(by), end: span.end.saturating_add(by) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(start: i64, end: i64) -> Span {
        Span { start, end }
    }

    #[test]
    fn pieces_closer_than_the_tolerance_join() {
        let m = merge([s(10, 20), s(0, 5), s(21, 30), s(5, 7), s(40, 41), s(3, 3)], 2);
        assert_eq!(m, vec![s(0, 7), s(10, 30), s(40, 41)]);
        // Exactly the tolerance apart: a gap.
        assert_eq!(merge([s(0, 10), s(12, 20)], 2), vec![s(0, 10), s(12, 20)]);
        assert_eq!(merge([s(0, 10), s(2, 4)], 0), vec![s(0, 10)]);
    }

    #[test]
    fn clip_and_outside() {
        assert_eq!(clip([s(0, 10), s(20, 30), s(40, 50)], 5, 45), vec![s(5, 10), s(20, 30), s(40, 45)]);
        assert_eq!(clip([s(0, 10)], 10, 20), vec![]);
        assert_eq!(outside(s(0, 100), s(10, 20)).collect::<Vec<_>>(), vec![s(0, 10), s(20, 100)]);
        assert_eq!(outside(s(15, 18), s(10, 20)).count(), 0);
        assert_eq!(widen(s(i64::MIN + 1, i64::MAX - 1), 5), s(i64::MIN, i64::MAX));
    }

    /// Naive reference: a point is covered when some piece covers it or it lies in a gap shorter than tol.
    fn covered(pieces: &[Span], tol: i64, t: i64) -> bool {
        let m = merge(pieces.iter().copied(), tol);
        m.iter().any(|x| x.start <= t && t < x.end)
    }

    proptest! {
        #[test]
        fn merge_is_sorted_disjoint_and_covers_every_piece(raw in proptest::collection::vec((0i64..200, 0i64..30), 0..30), tol in 0i64..10) {
            let pieces: Vec<Span> = raw.iter().map(|&(a, l)| s(a, a + l)).collect();
            let m = merge(pieces.iter().copied(), tol);
            for w in m.windows(2) {
                prop_assert!(w[1].start >= w[0].end + tol, "{:?}", m);
            }
            for p in pieces.iter().filter(|p| p.end > p.start) {
                for t in p.start..p.end {
                    prop_assert!(covered(&pieces, tol, t));
                }
            }
            // Every span starts and ends at a piece boundary.
            for x in &m {
                prop_assert!(pieces.iter().any(|p| p.start == x.start));
                prop_assert!(pieces.iter().any(|p| p.end == x.end));
            }
            // Merging is idempotent and order-independent.
            prop_assert_eq!(merge(m.clone(), tol), m.clone());
            let mut rev = pieces.clone();
            rev.reverse();
            prop_assert_eq!(merge(rev, tol), m);
        }
    }
}
