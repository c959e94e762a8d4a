//! Sets of integers stored as sorted, disjoint, inclusive intervals.
//!
//! Port numbers (`u16`) and IP addresses (`u32` for IPv4, `u128` for IPv6)
//! are both sets of this shape: `TCP 8000-8080` or `10.0.0.0/8 except
//! 10.1.0.0/16` become a handful of intervals, and the operations the engine
//! needs (union, intersection, difference, emptiness) are linear in the
//! number of intervals.
//!
//! Invariant: `spans` is sorted by start, and no two spans overlap or touch
//! (`a.end + 1 < b.start`), so equal sets have equal representations.

/// An integer type usable as an interval bound.
pub trait Point: Copy + Ord + std::fmt::Debug {
    /// The smallest value of the type.
    const MIN: Self;
    /// The largest value of the type.
    const MAX: Self;
    /// `self + 1`, or `None` at `MAX`.
    fn succ(self) -> Option<Self>;
    /// `self - 1`, or `None` at `MIN`.
    fn pred(self) -> Option<Self>;
}

macro_rules! impl_point {
    ($($t:ty),*) => {$(
        impl Point for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> { self.checked_add(1) }
            fn pred(self) -> Option<Self> { self.checked_sub(1) }
        }
    )*};
}
impl_point!(u16, u32, u128);

/// A set of integers as sorted, disjoint, non-adjacent inclusive spans.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Intervals<T: Point> {
    spans: Vec<(T, T)>,
}

impl<T: Point> Default for Intervals<T> {
    fn default() -> Self {
        Self::empty()
    }
}

// === impl Intervals ===

impl<T: Point> Intervals<T> {
    /// The empty set.
    pub fn empty() -> Self {
        Self { spans: Vec::new() }
    }

    /// The set `lo..=hi`; empty when `lo > hi`.
    pub fn span(lo: T, hi: T) -> Self {
        if lo > hi {
            Self::empty()
        } else {
            Self {
                spans: vec![(lo, hi)],
            }
        }
    }

    /// Builds a set from arbitrary (possibly overlapping) spans.
    pub fn from_spans(spans: impl IntoIterator<Item = (T, T)>) -> Self {
        let mut v: Vec<(T, T)> = spans.into_iter().filter(|(a, b)| a <= b).collect();
        v.sort();
        let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            if let Some(last) = out.last_mut() {
                let touches = match last.1.succ() {
                    Some(next) => lo <= next,
                    None => true,
                };
                if touches {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                    continue;
                }
            }
            out.push((lo, hi));
        }
        Self { spans: out }
    }

    /// The spans, sorted and disjoint.
    pub fn spans(&self) -> &[(T, T)] {
        &self.spans
    }

    /// True when the set has no element.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// True when `x` is in the set.
    pub fn contains(&self, x: T) -> bool {
        // Spans are sorted by start: find the last span starting at or before x.
        let idx = self.spans.partition_point(|(lo, _)| *lo <= x);
        idx > 0 && self.spans[idx - 1].1 >= x
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &Self) -> Self {
        Self::from_spans(self.spans.iter().chain(other.spans.iter()).copied())
    }

    /// `self ∩ other`.
    pub fn intersect(&self, other: &Self) -> Self {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.spans.len() && j < other.spans.len() {
            let (a_lo, a_hi) = self.spans[i];
            let (b_lo, b_hi) = other.spans[j];
            let lo = a_lo.max(b_lo);
            let hi = a_hi.min(b_hi);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a_hi < b_hi {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self { spans: out }
    }

    /// The complement within `T::MIN..=T::MAX`.
    pub fn complement(&self) -> Self {
        let mut out = Vec::new();
        let mut next = Some(T::MIN);
        for &(lo, hi) in &self.spans {
            if let Some(n) = next
                && n < lo
                && let Some(p) = lo.pred()
            {
                out.push((n, p));
            }
            next = hi.succ();
        }
        if let Some(n) = next {
            out.push((n, T::MAX));
        }
        Self { spans: out }
    }

    /// `self ∖ other`.
    pub fn difference(&self, other: &Self) -> Self {
        self.intersect(&other.complement())
    }

    /// True when `self ⊆ other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.difference(other).is_empty()
    }

    /// True when the sets share an element.
    pub fn overlaps(&self, other: &Self) -> bool {
        !self.intersect(other).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(spans: &[(u16, u16)]) -> Intervals<u16> {
        Intervals::from_spans(spans.iter().copied())
    }

    #[test]
    fn from_spans_merges_overlapping_and_adjacent() {
        assert_eq!(
            set(&[(5, 7), (1, 2), (3, 4), (9, 9)]).spans(),
            &[(1, 7), (9, 9)]
        );
        assert_eq!(set(&[(1, 10), (2, 3)]).spans(), &[(1, 10)]);
        assert_eq!(
            set(&[(u16::MAX, u16::MAX), (0, u16::MAX)]).spans(),
            &[(0, u16::MAX)]
        );
    }

    #[test]
    fn set_algebra() {
        let a = set(&[(1, 10), (20, 30)]);
        let b = set(&[(5, 25)]);
        assert_eq!(a.intersect(&b).spans(), &[(5, 10), (20, 25)]);
        assert_eq!(a.difference(&b).spans(), &[(1, 4), (26, 30)]);
        assert_eq!(a.union(&b).spans(), &[(1, 30)]);
        assert_eq!(set(&[]).complement().spans(), &[(0, u16::MAX)]);
        assert_eq!(set(&[(0, 5)]).complement().spans(), &[(6, u16::MAX)]);
        assert!(set(&[(5, 6)]).is_subset(&a));
        assert!(!b.is_subset(&a));
        assert!(a.contains(20) && a.contains(10) && !a.contains(11) && !a.contains(0));
    }
}
