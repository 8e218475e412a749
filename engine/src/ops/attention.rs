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
use crate::error::{bail, Result};
use crate::kernels::gemm::{sgemm, MatMut, MatRef};
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

impl Heads {
    /// Head `h` of batch entry `bi` of a `[B, L, E]` tensor's data, as an `L × D` view.
    fn view<'a>(&self, x: &'a [f32], bi: usize, h: usize, len: usize) -> MatRef<'a> {
        MatRef {
            data: &x[bi * len * self.e + h * self.d..],
            rows: len,
            cols: self.d,
            row_stride: self.e,
            col_stride: 1,
        }
    }

    /// The same head of batch entry `bi`'s own block (`[L, E]`) of an output, as a writable view.
    fn view_mut<'a>(&self, block: &'a mut [f32], h: usize, len: usize) -> MatMut<'a> {
        MatMut::strided(&mut block[h * self.d..], len, self.d, self.e)
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
    fn per_entry(&self, out: &mut [f32], size: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
        let work = self.b * self.h * self.t * self.s * self.d;
        let parallel = self.b > 1 && crate::threads::worth_splitting(work, 1 << 21);
        crate::threads::for_each_block(out, size, parallel, f);
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
        let (q, k, v) = (self.dims(), key.dims(), value.dims());
        if q.len() != 3 || k.len() != 3 || v.len() != 3 || k != v || q[0] != k[0] || q[2] != k[2] {
            bail!(
                "multi_head_attention",
                "expects query [B, T, E] and key, value [B, S, E], got {}, {} and {}",
                self.shape(),
                key.shape(),
                value.shape()
            );
        }
        if k[1] == 0 || q[2] == 0 {
            bail!(
                "multi_head_attention",
                "needs at least one key position and a non-zero width, got query {} and key {}",
                self.shape(),
                key.shape()
            );
        }
        if heads == 0 || q[2] % heads != 0 {
            bail!(
                "multi_head_attention",
                "width {} does not split into {heads} heads",
                q[2]
            );
        }
        let geo = Heads {
            b: q[0],
            t: q[1],
            s: k[1],
            e: q[2],
            h: heads,
            d: q[2] / heads,
        };
        let Heads { b, t, s, e, h, d } = geo;
        crate::tensor::budget::check("multi_head_attention", &[b, h, t, s])?;
        let scale = 1.0 / (d as f32).sqrt();
        let (qd, kd, vd) = (self.data(), key.data(), value.data());
        // Scores, scaled in the GEMM, then masked, then normalised row by row.
        // With `causal`, only the blocks on or below the diagonal are computed; the rest stay 0
        // (and are neither read nor needed: the softmax zeroes them).
        let blocks = geo.blocks(causal);
        let mut p = vec![0.0; b * h * t * s];
        geo.per_entry(&mut p, h * t * s, |bi, blk| {
            for (hi, scores) in blk.chunks_exact_mut(t * s).enumerate() {
                let (qm, km) = (geo.view(&qd, bi, hi, t), geo.view(&kd, bi, hi, s));
                for &(r0, r1, keys) in &blocks {
                    let out = MatMut::row_major(scores, t, s).sub(r0..r1, 0..keys);
                    let km = km.sub(0..keys, 0..d);
                    sgemm(scale, qm.sub(r0..r1, 0..d), km.t(), 0.0, out);
                }
            }
        });
        // Normalised in place; with `causal`, query i sees keys 0..=i (the rest become 0).
        vmath::softmax_rows_in_place(&mut p, s, if causal { t } else { 0 });
        let mut out = vec![0.0; b * t * e];
        let p_ref = &p;
        let blocks_ref = &blocks;
        geo.per_entry(&mut out, t * e, |bi, blk| {
            for hi in 0..h {
                let pm = MatRef::row_major(&p_ref[(bi * h + hi) * t * s..][..t * s], t, s);
                let vm = geo.view(&vd, bi, hi, s);
                // Rows r0..r1 of P·V: P's entries past key `keys` are 0.
                for &(r0, r1, keys) in blocks_ref {
                    let pm = pm.sub(r0..r1, 0..keys);
                    let out = geo.view_mut(blk, hi, t).sub(r0..r1, 0..d);
                    sgemm(1.0, pm, vm.sub(0..keys, 0..d), 0.0, out);
                }
            }
        });
        // The weights are returned for inspection and kept (shared, not copied) for the backward.
        let weights = Tensor::from_data(p, Shape::new(&[b, h, t, s]));
        let kept = weights.clone();
        let (sq, sk) = (self.shape().clone(), key.shape().clone());
        let out = record(
            "multi_head_attention",
            Buffer::new(out),
            sq.clone(),
            &[self, key, value],
            move || {
                move |g: &Tensor, needs: &[bool]| {
                    let (g, p) = (g.data(), kept.data());
                    let (blocks, key_blocks) = (geo.blocks(causal), geo.key_blocks(causal));
                    // dV = Pᵀ·dOut, per head.
                    let dv = needs[2].then(|| {
                        let mut dv = vec![0.0; b * s * e];
                        geo.per_entry(&mut dv, s * e, |bi, blk| {
                            for hi in 0..h {
                                let pm =
                                    MatRef::row_major(&p[(bi * h + hi) * t * s..][..t * s], t, s);
                                let gm = geo.view(&g, bi, hi, t);
                                for &(c0, c1, q0) in &key_blocks {
                                    // Pᵀ rows c0..c1 over queries q0..t.
                                    let pm = pm.sub(q0..t, c0..c1);
                                    let out = geo.view_mut(blk, hi, s).sub(c0..c1, 0..d);
                                    sgemm(1.0, pm.t(), gm.sub(q0..t, 0..d), 0.0, out);
                                }
                            }
                        });
                        Tensor::from_data(dv, sk.clone())
                    });
                    if !needs[0] && !needs[1] {
                        return Ok(smallvec![None, None, dv]);
                    }
                    // dP = dOut·Vᵀ, then through the softmax (masked entries have P = 0, so
                    // their gradient is 0).
                    let mut dp = vec![0.0; b * h * t * s];
                    geo.per_entry(&mut dp, h * t * s, |bi, blk| {
                        for (hi, dph) in blk.chunks_exact_mut(t * s).enumerate() {
                            let gm = geo.view(&g, bi, hi, t);
                            let vm = geo.view(&vd, bi, hi, s);
                            // Entries above the diagonal stay 0: their P is 0, so is their dS.
                            for &(r0, r1, keys) in &blocks {
                                let out = MatMut::row_major(dph, t, s).sub(r0..r1, 0..keys);
                                let vm = vm.sub(0..keys, 0..d);
                                sgemm(1.0, gm.sub(r0..r1, 0..d), vm.t(), 0.0, out);
                            }
                        }
                    });
                    let ds = vmath::softmax_backward_rows(&p, &dp, s);
                    let dsm = |bi: usize, hi: usize| {
                        MatRef::row_major(&ds[(bi * h + hi) * t * s..][..t * s], t, s)
                    };
                    // dQ = scale · dS·K and dK = scale · dSᵀ·Q.
                    let dq = needs[0].then(|| {
                        let mut dq = vec![0.0; b * t * e];
                        geo.per_entry(&mut dq, t * e, |bi, blk| {
                            for hi in 0..h {
                                let km = geo.view(&kd, bi, hi, s);
                                for &(r0, r1, keys) in &blocks {
                                    let ds = dsm(bi, hi).sub(r0..r1, 0..keys);
                                    let out = geo.view_mut(blk, hi, t).sub(r0..r1, 0..d);
                                    sgemm(scale, ds, km.sub(0..keys, 0..d), 0.0, out);
                                }
                            }
                        });
                        Tensor::from_data(dq, sq.clone())
                    });
                    let dk = needs[1].then(|| {
                        let mut dk = vec![0.0; b * s * e];
                        geo.per_entry(&mut dk, s * e, |bi, blk| {
                            for hi in 0..h {
                                let qm = geo.view(&qd, bi, hi, t);
                                for &(c0, c1, q0) in &key_blocks {
                                    let ds = dsm(bi, hi).sub(q0..t, c0..c1);
                                    let out = geo.view_mut(blk, hi, s).sub(c0..c1, 0..d);
                                    sgemm(scale, ds.t(), qm.sub(q0..t, 0..d), 0.0, out);
                                }
                            }
                        });
                        Tensor::from_data(dk, sk.clone())
                    });
                    Ok(smallvec![dq, dk, dv])
                }
            },
        );
        Ok((out, weights))
    }
}
