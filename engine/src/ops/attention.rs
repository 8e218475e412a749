//! Multi-head scaled dot-product attention as one fused op with its own backward: the core of
//! every transformer block. The composed form (split the heads with a permute, transpose the keys,
//! multiply, scale, add the mask, softmax, multiply, merge the heads with another permute) copies
//! each activation several times and makes as many temporaries in the backward pass. Here every
//! head is a strided view into the `[B, L, E]` tensors: each GEMM reads and writes them in place.
//!
//! Per batch entry `b` and head `h` (columns `h·D..(h+1)·D` of `E`, scale `1/√D`):
//!
//! ```text
//! forward:  P = softmax(scale · Q·Kᵀ + mask)        out = P·V
//! backward: dV = Pᵀ·dOut   dP = dOut·Vᵀ   dS = P ⊙ (dP − rowsum(dP ⊙ P))
//!           dQ = scale · dS·K                        dK = scale · dSᵀ·Q
//! ```

use smallvec::smallvec;

use crate::autodiff::record;
use std::mem::MaybeUninit;

use super::{into_floats, uninit, Out};
use crate::error::{bail, Result};
use crate::kernels::gemm::{sgemm, transpose, MatMut, MatRef};
use crate::kernels::vmath;
use crate::tensor::{Buffer, Shape, Tensor};

/// The score given to a position a query may not see: large enough that `exp(score − MASKED)`
/// is 0 in f32, small enough that a fully masked row stays finite (it becomes uniform instead of
/// NaN).
pub(crate) const MASKED: f32 = -1e9;

/// Queries per block of a causal product (see [`Heads::blocks`]): a multiple of both
/// micro-kernels' panel widths (16 on AVX2, 32 on AVX-512 handles 16 as one narrow panel). With
/// a context of 64, blocks of 16 do 62.5% of the full products' work.
const CAUSAL_BLOCK: usize = 16;

/// The geometry of one attention call.
#[derive(Clone, Copy)]
struct Heads {
    b: usize,
    t: usize,
    s: usize,
    e: usize,
    h: usize,
    d: usize,
}

/// Where one of Q, K and V (or its gradient) lives in its buffer: the buffer is `[B, L, ld]` and
/// holds it in the `E` columns from `col` on. Apart, `ld = E` and `col = 0`; packed side by side
/// by one projection, `ld = 3E` and `col` is 0, `E` or `2E`.
#[derive(Clone, Copy)]
struct Place {
    ld: usize,
    col: usize,
}

/// Q, K and V of one call: each one's data and where it is in it.
struct Inputs<'a> {
    q: (&'a [f32], Place),
    k: (&'a [f32], Place),
    v: (&'a [f32], Place),
}

impl<'a> Inputs<'a> {
    /// Q, K and V in buffers of their own, each `[B, L, E]`.
    fn apart(q: &'a [f32], k: &'a [f32], v: &'a [f32], e: usize) -> Inputs<'a> {
        let alone = Place { ld: e, col: 0 };
        Inputs {
            q: (q, alone),
            k: (k, alone),
            v: (v, alone),
        }
    }

    /// Q, K and V side by side in one `[B, L, 3E]` buffer.
    fn packed(x: &'a [f32], e: usize) -> Inputs<'a> {
        let at = |col| (x, Place { ld: 3 * e, col });
        Inputs {
            q: at(0),
            k: at(e),
            v: at(2 * e),
        }
    }
}

/// The buffers the backward pass writes dQ, dK and dV into, not zeroed first unless some of
/// their rows are never written (see [`Heads::grad_buffer`]).
enum Grads {
    /// One buffer per input, `None` for a gradient not wanted.
    Apart([Option<Vec<Out>>; 3]),
    /// One `[B, T, 3E]` buffer for a packed input: all three are wanted.
    Packed(Vec<Out>),
}

impl Grads {
    /// The buffer that gradient `which` (0 = dQ, 1 = dK, 2 = dV) is written into, with its place,
    /// or `None` when it is not wanted.
    fn target(&mut self, which: usize, e: usize) -> Option<(&mut [Out], Place)> {
        match self {
            Grads::Apart(g) => g[which]
                .as_deref_mut()
                .map(|buf| (buf, Place { ld: e, col: 0 })),
            Grads::Packed(buf) => Some((
                buf,
                Place {
                    ld: 3 * e,
                    col: which * e,
                },
            )),
        }
    }

    fn wants(&self, which: usize) -> bool {
        match self {
            Grads::Apart(g) => g[which].is_some(),
            Grads::Packed(_) => true,
        }
    }
}

impl Heads {
    /// Head `h` of batch entry `bi` of a `[B, L, ld]` buffer holding an input at `at`, as an
    /// `L × D` view.
    fn view<'a>(&self, (x, at): (&'a [f32], Place), bi: usize, h: usize, len: usize) -> MatRef<'a> {
        MatRef {
            data: &x[bi * len * at.ld + at.col + h * self.d..],
            rows: len,
            cols: self.d,
            row_stride: at.ld,
            col_stride: 1,
        }
    }

    /// The same head of batch entry `bi`'s own block (`[L, ld]`) of an output, as a view for a
    /// product to write (with beta = 0).
    fn view_mut<'a>(&self, block: &'a mut [Out], at: Place, h: usize, len: usize) -> MatMut<'a> {
        MatMut::uninit(&mut block[at.col + h * self.d..], len, self.d, at.ld)
    }

    /// The blocks of queries the products are split into, each with the keys it sees: with
    /// `causal`, blocks of [`CAUSAL_BLOCK`] queries `r0..r1` see keys `0..r1` (those past a
    /// query's own position are masked later), so the products skip the score blocks above the
    /// diagonal; else one block of all queries and keys.
    fn blocks(&self, causal: bool) -> Vec<(usize, usize, usize)> {
        if !causal {
            return vec![(0, self.t, self.s)];
        }
        (0..self.t)
            .step_by(CAUSAL_BLOCK)
            .map(|r0| {
                let r1 = (r0 + CAUSAL_BLOCK).min(self.t);
                (r0, r1, r1.min(self.s))
            })
            .collect()
    }

    /// The blocks of keys the products over queries (dV, dK) are split into, each with the first
    /// query that sees it: with `causal`, keys `c0..c1` are seen by queries `c0..` only (P and
    /// dS are 0 above the diagonal); keys no query sees are left out (their gradient stays 0).
    fn key_blocks(&self, causal: bool) -> Vec<(usize, usize, usize)> {
        if !causal {
            return vec![(0, self.s, 0)];
        }
        (0..self.s.min(self.t))
            .step_by(CAUSAL_BLOCK)
            .map(|c0| (c0, (c0 + CAUSAL_BLOCK).min(self.s), c0))
            .collect()
    }

    /// Runs `f(bi, block)` over batch entries, each owning `size` elements of `out`, across the
    /// engine's pool when the work is large enough (each entry is computed the same way either
    /// way).
    fn per_entry(&self, out: &mut [Out], size: usize, f: impl Fn(usize, &mut [Out]) + Sync) {
        let work = self.b * self.h * self.t * self.s * self.d;
        let parallel = self.b > 1 && crate::threads::worth_splitting(work, 1 << 21);
        crate::threads::for_each_block(out, size, parallel, f);
    }

    /// The buffer for dK or dV (`[B, S, ld]`), or dQ (`[B, T, ld]`, `keys = false`): not zeroed,
    /// unless some keys' rows will not be written (causal, with keys no query sees).
    fn grad_buffer(&self, causal: bool, keys: bool, ld: usize) -> Vec<Out> {
        let len = self.b * if keys { self.s } else { self.t } * ld;
        if keys && causal && self.s > self.t {
            vec![MaybeUninit::new(0.0); len]
        } else {
            uninit(len)
        }
    }

    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    /// The forward pass: the output `[B, T, E]` and the attention weights `[B, H, T, S]`.
    fn forward(&self, causal: bool, x: &Inputs) -> (Vec<f32>, Vec<f32>) {
        let Heads { b, t, s, e, h, d } = *self;
        let scale = self.scale();
        let causal_t = if causal { t } else { 0 };
        // Per head: the scores, scaled in the GEMM, then normalised row by row while they are
        // in cache. With `causal`, only the blocks on or below the diagonal are computed; the
        // softmax writes the rest (0) without reading it.
        let blocks = self.blocks(causal);
        let mut p = uninit(b * h * t * s);
        self.per_entry(&mut p, h * t * s, |bi, blk| {
            // Kᵀ, transposed once per head for all the blocks of queries (each product reads it
            // in place rather than packing it again).
            let mut kt = vec![0.0; d * s];
            for (hi, scores) in blk.chunks_exact_mut(t * s).enumerate() {
                let qm = self.view(x.q, bi, hi, t);
                transpose(self.view(x.k, bi, hi, s), &mut kt);
                let kt = MatRef::row_major(&kt, d, s);
                for &(r0, r1, keys) in &blocks {
                    let out = MatMut::uninit(&mut *scores, t, s, s).sub(r0..r1, 0..keys);
                    sgemm(scale, qm.sub(r0..r1, 0..d), kt.sub(0..d, 0..keys), 0.0, out);
                }
                // SAFETY: the products wrote, for each block of queries, the keys up to the last
                // one its last query sees: every entry each row's query sees.
                unsafe { vmath::softmax_rows_uninit(scores, s, causal_t) };
            }
        });
        // SAFETY: each head's softmax wrote every entry of its rows.
        let p = unsafe { into_floats(p) };
        let mut out = uninit(b * t * e);
        let alone = Place { ld: e, col: 0 };
        self.per_entry(&mut out, t * e, |bi, blk| {
            for hi in 0..h {
                let pm = MatRef::row_major(&p[(bi * h + hi) * t * s..][..t * s], t, s);
                let vm = self.view(x.v, bi, hi, s);
                // Rows r0..r1 of P·V: P's entries past key `keys` are 0.
                for &(r0, r1, keys) in &blocks {
                    let pm = pm.sub(r0..r1, 0..keys);
                    let out = self.view_mut(blk, alone, hi, t).sub(r0..r1, 0..d);
                    sgemm(1.0, pm, vm.sub(0..keys, 0..d), 0.0, out);
                }
            }
        });
        // SAFETY: the blocks of queries cover every row, the heads every column.
        (unsafe { into_floats(out) }, p)
    }

    /// The backward pass from the output's gradient `g` and the weights `p`, into `grads`.
    fn backward(&self, causal: bool, x: &Inputs, p: &[f32], g: &[f32], grads: &mut Grads) {
        let Heads { b, t, s, e, h, d } = *self;
        let scale = self.scale();
        let (blocks, key_blocks) = (self.blocks(causal), self.key_blocks(causal));
        let g = (g, Place { ld: e, col: 0 });
        // dV = Pᵀ·dOut, per head.
        if let Some((dv, at)) = grads.target(2, e) {
            self.per_entry(dv, s * at.ld, |bi, blk| {
                for hi in 0..h {
                    let pm = MatRef::row_major(&p[(bi * h + hi) * t * s..][..t * s], t, s);
                    let gm = self.view(g, bi, hi, t);
                    for &(c0, c1, q0) in &key_blocks {
                        // Pᵀ rows c0..c1 over queries q0..t.
                        let pm = pm.sub(q0..t, c0..c1);
                        let out = self.view_mut(blk, at, hi, s).sub(c0..c1, 0..d);
                        sgemm(1.0, pm.t(), gm.sub(q0..t, 0..d), 0.0, out);
                    }
                }
            });
        }
        if !grads.wants(0) && !grads.wants(1) {
            return;
        }
        // dP = dOut·Vᵀ, then through the softmax in place, per head while it is in cache: dS.
        // Entries above the diagonal are not computed: their P is 0, so is their dS (which the
        // softmax's backward writes without reading them).
        let causal_t = if causal { t } else { 0 };
        let mut ds = uninit(b * h * t * s);
        self.per_entry(&mut ds, h * t * s, |bi, blk| {
            let mut vt = vec![0.0; d * s];
            for (hi, dsh) in blk.chunks_exact_mut(t * s).enumerate() {
                let gm = self.view(g, bi, hi, t);
                transpose(self.view(x.v, bi, hi, s), &mut vt);
                let vt = MatRef::row_major(&vt, d, s);
                for &(r0, r1, keys) in &blocks {
                    let out = MatMut::uninit(&mut *dsh, t, s, s).sub(r0..r1, 0..keys);
                    sgemm(1.0, gm.sub(r0..r1, 0..d), vt.sub(0..d, 0..keys), 0.0, out);
                }
                let ph = &p[(bi * h + hi) * t * s..][..t * s];
                // SAFETY: as for the scores in `forward`, the products wrote every entry each
                // row's query sees.
                unsafe { vmath::softmax_backward_rows_uninit(ph, dsh, s, causal_t) };
            }
        });
        // SAFETY: each head's softmax backward wrote every entry of its rows.
        let ds = unsafe { into_floats(ds) };
        let dsm =
            |bi: usize, hi: usize| MatRef::row_major(&ds[(bi * h + hi) * t * s..][..t * s], t, s);
        // dQ = scale · dS·K and dK = scale · dSᵀ·Q.
        if let Some((dq, at)) = grads.target(0, e) {
            self.per_entry(dq, t * at.ld, |bi, blk| {
                for hi in 0..h {
                    let km = self.view(x.k, bi, hi, s);
                    for &(r0, r1, keys) in &blocks {
                        let ds = dsm(bi, hi).sub(r0..r1, 0..keys);
                        let out = self.view_mut(blk, at, hi, t).sub(r0..r1, 0..d);
                        sgemm(scale, ds, km.sub(0..keys, 0..d), 0.0, out);
                    }
                }
            });
        }
        if let Some((dk, at)) = grads.target(1, e) {
            self.per_entry(dk, s * at.ld, |bi, blk| {
                for hi in 0..h {
                    let qm = self.view(x.q, bi, hi, t);
                    for &(c0, c1, q0) in &key_blocks {
                        let ds = dsm(bi, hi).sub(q0..t, c0..c1);
                        let out = self.view_mut(blk, at, hi, s).sub(c0..c1, 0..d);
                        sgemm(scale, ds.t(), qm.sub(q0..t, 0..d), 0.0, out);
                    }
                }
            });
        }
    }
}

impl Tensor {
    /// Multi-head attention of queries `self` (`[B, T, E]`) over `key` and `value` (`[B, S, E]`),
    /// with `heads` heads of `E / heads` features each (already projected: this is
    /// `softmax(Q·Kᵀ/√D + mask)·V` per head, the heads side by side in the output). With `causal`,
    /// query `i` sees keys `0..=i` only. Returns the output `[B, T, E]` and the attention weights
    /// `[B, heads, T, S]`, the latter for inspection (gradients flow through the output).
    pub fn multi_head_attention(
        &self,
        key: &Tensor,
        value: &Tensor,
        heads: usize,
        causal: bool,
    ) -> Result<(Tensor, Tensor)> {
        const OP: &str = "multi_head_attention";
        let (q, k, v) = (self.dims(), key.dims(), value.dims());
        if q.len() != 3 || k.len() != 3 || v.len() != 3 || k != v || q[0] != k[0] || q[2] != k[2] {
            bail!(
                OP,
                "expects query [B, T, E] and key, value [B, S, E], got {}, {} and {}",
                self.shape(),
                key.shape(),
                value.shape()
            );
        }
        let geo = Heads::checked(OP, q[0], q[1], k[1], q[2], heads)?;
        let (qd, kd, vd) = (self.data(), key.data(), value.data());
        let (out, p) = geo.forward(causal, &Inputs::apart(&qd, &kd, &vd, geo.e));
        // The weights are returned for inspection and kept (shared, not copied) for the backward.
        let weights = Tensor::from_data(p, Shape::new(&[geo.b, heads, geo.t, geo.s]));
        let kept = weights.clone();
        let (sq, sk) = (self.shape().clone(), key.shape().clone());
        let out = record(
            OP,
            Buffer::new(out),
            sq.clone(),
            &[self, key, value],
            move || {
                move |g: &Tensor, needs: &[bool]| {
                    let e = geo.e;
                    let want =
                        |i: usize, keys: bool| needs[i].then(|| geo.grad_buffer(causal, keys, e));
                    let mut grads = Grads::Apart([want(0, false), want(1, true), want(2, true)]);
                    let x = Inputs::apart(&qd, &kd, &vd, e);
                    geo.backward(causal, &x, &kept.data(), &g.data(), &mut grads);
                    let Grads::Apart([dq, dk, dv]) = grads else {
                        unreachable!("the gradients were made apart")
                    };
                    // SAFETY: `backward` wrote every element of each gradient it was given:
                    // dQ's rows (the blocks of queries cover them) and columns (the heads), and
                    // the rows of dK and dV of keys some query sees (`grad_buffer` zeroed the
                    // others').
                    let done =
                        |x: Vec<Out>, shape| Tensor::from_data(unsafe { into_floats(x) }, shape);
                    Ok(smallvec![
                        dq.map(|x| done(x, sq)),
                        dk.map(|x| done(x, sk.clone())),
                        dv.map(|x| done(x, sk)),
                    ])
                }
            },
        );
        Ok((out, weights))
    }

    /// Multi-head attention of a sequence over itself, with its queries, keys and values side by
    /// side in `self`, `[B, T, 3E]`: Q in columns `0..E`, K in `E..2E`, V in `2E..3E`, as one
    /// projection by the stacked weights `[3E, E]` makes them (PyTorch's `in_proj_weight`).
    /// Equal to `q.multi_head_attention(&k, &v, heads, causal)` on the three parts, but the heads
    /// are read from `self` in place and the gradient is one `[B, T, 3E]` tensor, so the
    /// projection before it is one product forward and one backward instead of three each.
    pub fn multi_head_self_attention(
        &self,
        heads: usize,
        causal: bool,
    ) -> Result<(Tensor, Tensor)> {
        const OP: &str = "multi_head_self_attention";
        let x = self.dims();
        if x.len() != 3 || !x[2].is_multiple_of(3) {
            bail!(
                OP,
                "expects queries, keys and values side by side, [B, T, 3E], got {}",
                self.shape()
            );
        }
        let geo = Heads::checked(OP, x[0], x[1], x[1], x[2] / 3, heads)?;
        let xd = self.data();
        let e = geo.e;
        let (out, p) = geo.forward(causal, &Inputs::packed(&xd, e));
        let weights = Tensor::from_data(p, Shape::new(&[geo.b, heads, geo.t, geo.s]));
        let kept = weights.clone();
        let sx = self.shape().clone();
        let out_shape = Shape::new(&[geo.b, geo.t, e]);
        let out = record(OP, Buffer::new(out), out_shape, &[self], move || {
            move |g: &Tensor, _: &[bool]| {
                // Every key is seen (T = S), so every row is written.
                let mut grads = Grads::Packed(uninit(sx.numel()));
                geo.backward(
                    causal,
                    &Inputs::packed(&xd, e),
                    &kept.data(),
                    &g.data(),
                    &mut grads,
                );
                let Grads::Packed(dx) = grads else {
                    unreachable!("the gradient was made packed")
                };
                // SAFETY: `backward` wrote dQ, dK and dV, every row and head of each: all of `dx`.
                let dx = unsafe { into_floats(dx) };
                Ok(smallvec![Some(Tensor::from_data(dx, sx))])
            }
        });
        Ok((out, weights))
    }
}

impl Heads {
    /// The geometry of `b` sequences of `t` queries over `s` keys, `e` wide, in `heads` heads;
    /// an error naming `op` when there is nothing to attend to or the heads do not divide `e`.
    fn checked(
        op: &'static str,
        b: usize,
        t: usize,
        s: usize,
        e: usize,
        heads: usize,
    ) -> Result<Heads> {
        if s == 0 || e == 0 {
            bail!(
                op,
                "needs at least one key position and a non-zero width, got {s} keys of width {e}"
            );
        }
        if heads == 0 || !e.is_multiple_of(heads) {
            bail!(op, "width {e} does not split into {heads} heads");
        }
        crate::tensor::budget::check(op, &[b, heads, t, s])?;
        Ok(Heads {
            b,
            t,
            s,
            e,
            h: heads,
            d: e / heads,
        })
    }
}
