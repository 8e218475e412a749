//! Shapes, strides and the broadcasting rules.

use smallvec::SmallVec;
use std::fmt;

use crate::error::{bail, Result};

/// Dimensions stored inline up to 6 axes, so making a tensor does not allocate for its shape.
pub type Dims = SmallVec<[usize; 6]>;

/// The extent of each axis of a tensor, outermost first. Storage is always row-major.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub(crate) Dims);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Shape {
        Shape(Dims::from_slice(dims))
    }

    /// The shape of a scalar: no axes, one element.
    pub fn scalar() -> Shape {
        Shape(Dims::new())
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> Dims {
        let mut strides = Dims::from_elem(0, self.0.len());
        let mut acc = 1;
        for (s, &d) in strides.iter_mut().zip(self.0.iter()).rev() {
            *s = acc;
            acc *= d;
        }
        strides
    }

    /// Resolves a possibly negative axis (`-1` is the last) against this shape's rank, for ops
    /// that index the axis (so a scalar, which has none, is refused; reductions, which accept
    /// axis 0 of a scalar as PyTorch does, use [`resolve_axis`]).
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        if self.rank() == 0 {
            bail!(
                op,
                "a scalar (shape []) has no axis {axis}; reshape it to [1] first"
            );
        }
        resolve_axis(op, axis, self.rank())
    }
}

/// Resolves a possibly negative axis against `rank`, with an error naming the op when out of range.
pub fn resolve_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) || (rank == 0 && a != 0) {
        bail!(
            op,
            "axis {axis} is out of range for a tensor with {rank} axes (valid: {} to {})",
            -r.max(1),
            r.max(1) - 1
        );
    }
    Ok(a as usize)
}

/// Resolves a list of axes, rejecting duplicates. An empty list means every axis.
pub fn resolve_axes(op: &'static str, axes: &[isize], rank: usize) -> Result<Dims> {
    if axes.is_empty() {
        return Ok((0..rank).collect());
    }
    let mut out = Dims::new();
    for &a in axes {
        let a = resolve_axis(op, a, rank)?;
        if out.contains(&a) {
            bail!(op, "axis {a} is listed twice in {axes:?}");
        }
        out.push(a);
    }
    out.sort_unstable();
    Ok(out)
}

/// The shape two operands broadcast to, by NumPy's rules: align the shapes at their last axis;
/// each pair of extents must be equal or one of them 1.
pub fn broadcast_shapes(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
    if a == b {
        return Ok(a.clone());
    }
    let rank = a.rank().max(b.rank());
    let mut dims = Dims::from_elem(0, rank);
    for i in 0..rank {
        let da = if i < rank - a.rank() {
            1
        } else {
            a.0[i - (rank - a.rank())]
        };
        let db = if i < rank - b.rank() {
            1
        } else {
            b.0[i - (rank - b.rank())]
        };
        dims[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => bail!(op, "cannot broadcast {a} with {b}: extents {da} and {db} at axis {i} of the result differ and neither is 1"),
        };
    }
    Ok(Shape(dims))
}

/// Strides to read a tensor of shape `from` as if it had the (broadcast) shape `to`: 0 on
/// broadcast axes. `from` must broadcast to `to`.
pub fn broadcast_strides(from: &Shape, to: &Shape) -> Dims {
    let own = from.strides();
    let offset = to.rank() - from.rank();
    let mut strides = Dims::from_elem(0, to.rank());
    for i in 0..from.rank() {
        if from.0[i] != 1 {
            strides[i + offset] = own[i];
        }
    }
    strides
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Shape {
        Shape::new(d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Shape {
        Shape::new(&d)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Shape {
        Shape::new(&d)
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Shape {
        s.clone()
    }
}

/// Calls `f(offsets)` once per contiguous run along the last axis of `shape`, where `offsets[k]` is
/// the element offset of the run's start in operand `k` (read with `strides[k]`). The run length is
/// the last extent; operand `k` advances by `strides[k][last]` within a run.
///
/// This is the one strided walk every broadcasting kernel uses, so none of them needs per-element
/// index arithmetic.
pub(crate) fn for_each_run<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
    mut f: impl FnMut([usize; N]),
) {
    let rank = shape.len();
    if shape.contains(&0) {
        return;
    }
    if rank <= 1 {
        f([0; N]);
        return;
    }
    let outer = rank - 1;
    let mut index: Dims = Dims::from_elem(0, outer);
    let mut offsets = [0usize; N];
    loop {
        f(offsets);
        // Advance the odometer over the outer axes.
        let mut axis = outer;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            for k in 0..N {
                offsets[k] += strides[k][axis];
            }
            if index[axis] < shape[axis] {
                break;
            }
            for k in 0..N {
                offsets[k] -= strides[k][axis] * shape[axis];
            }
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let s = |d: &[usize]| Shape::new(d);
        assert_eq!(
            broadcast_shapes("t", &s(&[3, 1]), &s(&[4])).unwrap(),
            s(&[3, 4])
        );
        assert_eq!(
            broadcast_shapes("t", &s(&[]), &s(&[2, 2])).unwrap(),
            s(&[2, 2])
        );
        assert_eq!(
            broadcast_shapes("t", &s(&[5, 1, 7]), &s(&[6, 1])).unwrap(),
            s(&[5, 6, 7])
        );
        let e = broadcast_shapes("add", &s(&[3, 2]), &s(&[4])).unwrap_err();
        assert_eq!(e.to_string(), "add: cannot broadcast [3, 2] with [4]: extents 2 and 4 at axis 1 of the result differ and neither is 1");
    }

    #[test]
    fn runs_visit_every_row_once() {
        let shape = [2, 3, 4];
        let a = Shape::new(&shape).strides();
        let mut seen = vec![];
        for_each_run(&shape, [&a], |[o]| seen.push(o));
        assert_eq!(seen, vec![0, 4, 8, 12, 16, 20]);
    }
}
