//! Shape ops: reshape, permute, squeeze/unsqueeze, narrow, index_select, gather, concat, stack,
//! broadcast_to. A reshape is a view (no copy); the others copy, since storage stays contiguous.

use smallvec::{smallvec, SmallVec};

use super::expand;
use crate::autodiff::{record, Grads};
use crate::error::{bail, Result};
use crate::tensor::shape::{broadcast_shapes, for_each_run, resolve_axis, Dims};
use crate::tensor::{Buffer, Shape, Tensor};

/// `(outer, extent, inner)` around `axis`: the tensor read as `[outer, extent, inner]`.
fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

impl Tensor {
    /// The same numbers with another shape (one entry may be -1, inferred), as a view.
    pub fn reshape(&self, dims: &[isize]) -> Result<Tensor> {
        let mut out = Dims::new();
        let mut infer = None;
        for (i, &d) in dims.iter().enumerate() {
            match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    out.push(1);
                }
                -1 => bail!("reshape", "only one axis can be -1 in {dims:?}"),
                d if d < 0 => bail!("reshape", "invalid extent {d} in {dims:?}"),
                d => out.push(d as usize),
            }
        }
        if let Some(i) = infer {
            let known: usize = out.iter().product();
            if known == 0 || !self.numel().is_multiple_of(known) {
                bail!(
                    "reshape",
                    "cannot reshape {} ({} elements) into {dims:?}",
                    self.shape(),
                    self.numel()
                );
            }
            out[i] = self.numel() / known;
        }
        self.reshape_to(Shape(out))
    }

    /// The same numbers viewed with `shape`, which must have as many elements.
    pub fn reshape_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            bail!(
                "reshape",
                "cannot reshape {} ({} elements) into {} ({} elements)",
                self.shape(),
                self.numel(),
                shape,
                shape.numel()
            );
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let in_shape = self.shape().clone();
        Ok(record("reshape", self.data(), shape, &[self], move || {
            move |g: &Tensor, _: &[bool]| Ok(smallvec![Some(g.reshape_to(in_shape)?)])
        }))
    }

    /// Flattens axes `start..=end` into one (negative axes count from the end).
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape_to([1]);
        }
        let (s, e) = (
            resolve_axis("flatten", start, self.rank())?,
            resolve_axis("flatten", end, self.rank())?,
        );
        if s > e {
            bail!(
                "flatten",
                "start axis {start} comes after end axis {end} for shape {}",
                self.shape()
            );
        }
        let d = self.dims();
        let mut out: Dims = d[..s].iter().copied().collect();
        out.push(d[s..=e].iter().product());
        out.extend_from_slice(&d[e + 1..]);
        self.reshape_to(Shape(out))
    }

    /// Inserts an axis of extent 1 at `axis` (which may equal the rank, or be negative).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let a = resolve_axis("unsqueeze", axis, self.rank() + 1)?;
        let mut d: Dims = self.dims().iter().copied().collect();
        d.insert(a, 1);
        self.reshape_to(Shape(d))
    }

    /// Removes `axis`, which must have extent 1.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = self.shape().axis("squeeze", axis)?;
        if self.dims()[a] != 1 {
            bail!(
                "squeeze",
                "axis {a} has extent {}, not 1 (shape {})",
                self.dims()[a],
                self.shape()
            );
        }
        let mut d: Dims = self.dims().iter().copied().collect();
        d.remove(a);
        self.reshape_to(Shape(d))
    }

    /// Removes every axis of extent 1.
    pub fn squeeze_all(&self) -> Tensor {
        let d: Dims = self.dims().iter().copied().filter(|&d| d != 1).collect();
        self.reshape_to(Shape(d))
            .expect("dropping unit axes keeps the element count")
    }

    /// Reorders the axes: axis `i` of the result is axis `perm[i]` of `self`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
        {
            bail!(
                "permute",
                "{perm:?} is not a permutation of the {rank} axes of shape {}",
                self.shape()
            );
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let src_strides = self.shape().strides();
        let out_dims: Dims = perm.iter().map(|&p| self.dims()[p]).collect();
        let read: Dims = perm.iter().map(|&p| src_strides[p]).collect();
        let x = self.data();
        let mut y = Vec::with_capacity(self.numel());
        let n = *out_dims.last().unwrap_or(&1);
        let step = *read.last().unwrap_or(&1);
        for_each_run(&out_dims, [&read], |[o]| {
            y.extend((0..n).map(|i| x[o + i * step]))
        });
        let mut inverse = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(record(
            "permute",
            Buffer::new(y),
            Shape(out_dims),
            &[self],
            move || move |g: &Tensor, _: &[bool]| Ok(smallvec![Some(g.permute(&inverse)?)]),
        ))
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (
            self.shape().axis("transpose", a)?,
            self.shape().axis("transpose", b)?,
        );
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The transpose of a matrix (swaps the last two axes).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            bail!("t", "needs at least 2 axes, got shape {}", self.shape());
        }
        self.transpose(-2, -1)
    }

    /// `len` entries of `axis` starting at `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = self.shape().axis("narrow", axis)?;
        let d = self.dims()[a];
        if start.checked_add(len).is_none_or(|end| end > d) {
            bail!(
                "narrow",
                "entries {start}..{} are out of range for axis {a} of extent {d} (shape {})",
                start.saturating_add(len),
                self.shape()
            );
        }
        let (outer, extent, inner) = split_at_axis(self.dims(), a);
        let mut dims: Dims = self.dims().iter().copied().collect();
        dims[a] = len;
        let x = self.data();
        let y = if outer == 1 {
            x.view(start * inner, len * inner) // contiguous: a view, no copy
        } else {
            let mut v = Vec::with_capacity(outer * len * inner);
            for o in 0..outer {
                let base = (o * extent + start) * inner;
                v.extend_from_slice(&x[base..base + len * inner]);
            }
            Buffer::new(v)
        };
        let in_shape = self.shape().clone();
        Ok(record("narrow", y, Shape(dims), &[self], move || {
            move |g: &Tensor, _: &[bool]| {
                // The gradient is `g` placed back at its rows, zero elsewhere.
                let mut gx = vec![0.0; in_shape.numel()];
                let g = g.data();
                for o in 0..outer {
                    let base = (o * extent + start) * inner;
                    gx[base..base + len * inner]
                        .copy_from_slice(&g[o * len * inner..(o + 1) * len * inner]);
                }
                Ok(smallvec![Some(Tensor::from_data(gx, in_shape))])
            }
        }))
    }

    /// Entries `start..end` of `axis` (Python's `x[..., start:end, ...]`).
    pub fn slice(&self, axis: isize, start: usize, end: usize) -> Result<Tensor> {
        if end < start {
            bail!("slice", "end {end} is before start {start}");
        }
        let a = self.shape().axis("slice", axis)?;
        let d = self.dims()[a];
        if end > d {
            bail!(
                "slice",
                "entries {start}..{end} are out of range for axis {a} of extent {d} (shape {})",
                self.shape()
            );
        }
        self.narrow(axis, start, end - start)
    }

    /// Entry `index` of `axis`, with that axis removed (`x[i]` for axis 0).
    pub fn select(&self, axis: isize, index: usize) -> Result<Tensor> {
        let a = self.shape().axis("select", axis)?;
        let d = self.dims()[a];
        if index >= d {
            bail!(
                "select",
                "index {index} is out of range for axis {a} of extent {d} (shape {})",
                self.shape()
            );
        }
        self.narrow(axis, index, 1)?.squeeze(axis)
    }

    /// The entries of `axis` listed in `indices` (repeats allowed), as `torch.index_select`.
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Tensor> {
        let a = self.shape().axis("index_select", axis)?;
        let (outer, extent, inner) = split_at_axis(self.dims(), a);
        if let Some(&bad) = indices.iter().find(|&&i| i >= extent) {
            bail!(
                "index_select",
                "index {bad} is out of range for axis {a} of extent {extent} (shape {})",
                self.shape()
            );
        }
        let mut dims: Dims = self.dims().iter().copied().collect();
        dims[a] = indices.len();
        crate::tensor::budget::check("index_select", &dims)?;
        let x = self.data();
        let mut y = Vec::with_capacity(outer * indices.len() * inner);
        for o in 0..outer {
            for &i in indices {
                let base = (o * extent + i) * inner;
                y.extend_from_slice(&x[base..base + inner]);
            }
        }
        let in_shape = self.shape().clone();
        let indices = indices.to_vec();
        Ok(record(
            "index_select",
            Buffer::new(y),
            Shape(dims),
            &[self],
            move || {
                move |g: &Tensor, _: &[bool]| {
                    // Each selected row's gradient is added back to the row it came from.
                    let mut gx = vec![0.0; in_shape.numel()];
                    let g = g.data();
                    let mut k = 0;
                    for o in 0..outer {
                        for &i in &indices {
                            let base = (o * extent + i) * inner;
                            crate::kernels::vmath::add_rows(
                                &mut gx[base..base + inner],
                                &g[k..k + inner],
                            );
                            k += inner;
                        }
                    }
                    Ok(smallvec![Some(Tensor::from_data(gx, in_shape))])
                }
            },
        ))
    }

    /// Reads this tensor's values as indices, each a whole number in `0..bound`.
    pub fn to_indices(&self, op: &'static str, bound: usize) -> Result<Vec<usize>> {
        self.data()
            .iter()
            .map(|&v| {
                if v.fract() != 0.0 || v < 0.0 || v as usize >= bound || !v.is_finite() {
                    bail!(op, "index {v} is not a whole number in 0..{bound}");
                }
                Ok(v as usize)
            })
            .collect()
    }

    /// `out[i][j] = self[i][index[i][j]]` along `axis` (here 1), as `torch.gather`: `index` has the
    /// rank of `self`, and no larger extents on the other axes.
    pub fn gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        let a = self.shape().axis("gather", axis)?;
        if index.rank() != self.rank()
            || index
                .dims()
                .iter()
                .zip(self.dims())
                .enumerate()
                .any(|(i, (&di, &ds))| i != a && di > ds)
        {
            bail!("gather", "index of shape {} does not fit input of shape {} along axis {a}: it needs the same rank and no larger extent on the other axes", index.shape(), self.shape());
        }
        let idx = index.to_indices("gather", self.dims()[a])?;
        let src_strides = self.shape().strides();
        let out_shape = index.shape().clone();
        // For each output position, the flat offset it reads from.
        let mut from = Vec::with_capacity(idx.len());
        let out_strides = out_shape.strides();
        for (flat, &i) in idx.iter().enumerate() {
            let mut rem = flat;
            let mut off = 0;
            for (ax, &st) in out_strides.iter().enumerate() {
                let coord = rem / st;
                rem %= st;
                off += if ax == a { i } else { coord } * src_strides[ax];
            }
            from.push(off);
        }
        let x = self.data();
        let y: Vec<f32> = from.iter().map(|&o| x[o]).collect();
        let in_shape = self.shape().clone();
        Ok(record(
            "gather",
            Buffer::new(y),
            out_shape,
            &[self],
            move || {
                move |g: &Tensor, _: &[bool]| {
                    let mut gx = vec![0.0; in_shape.numel()];
                    for (&o, &gv) in from.iter().zip(g.data().iter()) {
                        gx[o] += gv;
                    }
                    Ok(smallvec![Some(Tensor::from_data(gx, in_shape))])
                }
            },
        ))
    }

    /// Joins tensors along `axis`; their other extents must agree.
    pub fn concat(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let Some(first) = tensors.first() else {
            bail!("concat", "needs at least one tensor")
        };
        let a = first.shape().axis("concat", axis)?;
        for t in tensors {
            let same = t.rank() == first.rank()
                && t.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .all(|(i, (x, y))| i == a || x == y);
            if !same {
                bail!("concat", "cannot join shape {} with shape {} along axis {a}: the other extents must agree", first.shape(), t.shape());
            }
        }
        let (outer, _, inner) = split_at_axis(first.dims(), a);
        let extents: Vec<usize> = tensors.iter().map(|t| t.dims()[a]).collect();
        let total: usize = extents.iter().sum();
        let mut dims: Dims = first.dims().iter().copied().collect();
        dims[a] = total;
        crate::tensor::budget::check("concat", &dims)?;
        let datas: Vec<Buffer> = tensors.iter().map(|t| t.data()).collect();
        let mut y = Vec::with_capacity(outer * total * inner);
        for o in 0..outer {
            for (d, &e) in datas.iter().zip(&extents) {
                y.extend_from_slice(&d[o * e * inner..(o + 1) * e * inner]);
            }
        }
        let inputs: Vec<&Tensor> = tensors.iter().collect();
        Ok(record(
            "concat",
            Buffer::new(y),
            Shape(dims),
            &inputs,
            move || {
                move |g: &Tensor, needs: &[bool]| {
                    let mut grads: Grads = SmallVec::new();
                    let mut start = 0;
                    for (&e, &need) in extents.iter().zip(needs) {
                        grads.push(if need {
                            Some(g.narrow(a as isize, start, e)?)
                        } else {
                            None
                        });
                        start += e;
                    }
                    Ok(grads)
                }
            },
        ))
    }

    /// Stacks tensors of one shape along a new axis.
    pub fn stack(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let Some(first) = tensors.first() else {
            bail!("stack", "needs at least one tensor")
        };
        if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
            bail!(
                "stack",
                "all tensors must have one shape, got {} and {}",
                first.shape(),
                t.shape()
            );
        }
        let a = resolve_axis("stack", axis, first.rank() + 1)? as isize;
        let parts = tensors
            .iter()
            .map(|t| t.unsqueeze(a))
            .collect::<Result<Vec<_>>>()?;
        Tensor::concat(&parts, a)
    }

    /// This tensor repeated along broadcast axes to `shape` (NumPy rules).
    pub fn broadcast_to(&self, shape: &Shape) -> Result<Tensor> {
        if broadcast_shapes("broadcast_to", self.shape(), shape)
            .ok()
            .as_ref()
            != Some(shape)
        {
            bail!("broadcast_to", "cannot broadcast {} to {}: a tensor only grows along axes of extent 1 and new leading axes", self.shape(), shape);
        }
        if self.shape() == shape {
            return Ok(self.clone());
        }
        crate::tensor::budget::check("broadcast_to", shape.dims())?;
        let y = expand(&self.data(), self.shape(), shape);
        let in_shape = self.shape().clone();
        Ok(record(
            "broadcast_to",
            y,
            shape.clone(),
            &[self],
            move || move |g: &Tensor, _: &[bool]| Ok(smallvec![Some(g.sum_to(&in_shape)?)]),
        ))
    }
}
