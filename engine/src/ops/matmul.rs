//! Matrix products: 2-D, batched with broadcast leading axes, and the 1-D cases of `torch.matmul`.

use smallvec::smallvec;

use crate::autodiff::record;
use crate::error::{bail, Result};
use crate::kernels::gemm::{sgemm, sgemm_new, Epilogue, MatMut, MatRef};
use crate::tensor::shape::{broadcast_shapes, Dims};
use crate::tensor::{Buffer, Shape, Tensor};

/// For each matrix of the broadcast batch `out`, the index of the matrix it reads in an operand
/// whose batch shape is `from`.
fn batch_sources(from: &[usize], out: &[usize]) -> Vec<usize> {
    let count: usize = out.iter().product();
    let lead = out.len() - from.len();
    let from_strides = Shape::new(from).strides();
    (0..count)
        .map(|mut flat| {
            let mut src = 0;
            for ax in (0..out.len()).rev() {
                let coord = flat % out[ax];
                flat /= out[ax];
                if ax >= lead && from[ax - lead] != 1 {
                    src += coord * from_strides[ax - lead];
                }
            }
            src
        })
        .collect()
}

impl Tensor {
    /// The matrix product, with `torch.matmul`'s rules: 1-D operands are treated as a row (left) or
    /// column (right) vector and that axis is dropped from the result; leading axes broadcast.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        match (self.rank(), rhs.rank()) {
            (0, _) | (_, 0) => bail!(
                "matmul",
                "cannot multiply {} by {}: both operands need at least one axis",
                self.shape(),
                rhs.shape()
            ),
            (1, 1) => {
                if self.dims()[0] != rhs.dims()[0] {
                    bail!(
                        "matmul",
                        "cannot take the dot product of {} and {}: lengths differ",
                        self.shape(),
                        rhs.shape()
                    );
                }
                self.unsqueeze(0)?
                    .matmul_nd(&rhs.unsqueeze(1)?)?
                    .reshape_to(Shape::scalar())
            }
            (1, _) => self.unsqueeze(0)?.matmul_nd(rhs)?.squeeze(-2),
            (_, 1) => self.matmul_nd(&rhs.unsqueeze(1)?)?.squeeze(-1),
            _ => self.matmul_nd(rhs),
        }
    }

    /// `[..., m, k] x [..., k, n] -> [..., m, n]` with broadcast batch axes.
    fn matmul_nd(&self, rhs: &Tensor) -> Result<Tensor> {
        let (ad, bd) = (self.dims(), rhs.dims());
        let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
        let (k2, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
        if k != k2 {
            bail!(
                "matmul",
                "cannot multiply {} by {}: inner dimensions {k} and {k2} differ",
                self.shape(),
                rhs.shape()
            );
        }
        let (abatch, bbatch) = (&ad[..ad.len() - 2], &bd[..bd.len() - 2]);
        let batch =
            broadcast_shapes("matmul", &Shape::new(abatch), &Shape::new(bbatch)).map_err(|_| {
                crate::error::Error::new(
                    "matmul",
                    format!(
                        "cannot multiply {} by {}: batch axes {:?} and {:?} do not broadcast",
                        self.shape(),
                        rhs.shape(),
                        abatch,
                        bbatch
                    ),
                )
            })?;
        let mut out_dims: Vec<usize> = batch.dims().to_vec();
        out_dims.extend([m, n]);
        crate::tensor::budget::check("matmul", &out_dims)?;
        let (asrc, bsrc) = (
            batch_sources(abatch, batch.dims()),
            batch_sources(bbatch, batch.dims()),
        );
        let (a, b) = (self.data(), rhs.data());
        let mut y = vec![0.0; asrc.len() * m * n];
        // Many small products (attention's, one per batch entry and head): the pool takes whole
        // products, each on one thread.
        let parallel = crate::threads::worth_splitting(asrc.len() * m * n * k, 1 << 21);
        crate::threads::for_each_block(&mut y, m * n, parallel, |i, yi| {
            let (ia, ib) = (asrc[i], bsrc[i]);
            let am = MatRef::row_major(&a[ia * m * k..(ia + 1) * m * k], m, k);
            let bm = MatRef::row_major(&b[ib * k * n..(ib + 1) * k * n], k, n);
            sgemm(1.0, am, bm, 0.0, MatMut::row_major(yi, m, n));
        });
        let mut out: Dims = batch.dims().iter().copied().collect();
        out.extend([m, n]);
        let (sa, sb) = (self.shape().clone(), rhs.shape().clone());
        Ok(record(
            "matmul",
            Buffer::new(y),
            Shape(out),
            &[self, rhs],
            move || {
                move |g: &Tensor, needs: &[bool]| {
                    // dA = G·Bᵀ and dB = Aᵀ·G per matrix, accumulated (beta = 1) into the matrix each
                    // operand's batch entry came from: that sums over broadcast batch axes for free.
                    let g = g.data();
                    // In parallel only when no batch entry was broadcast (each gradient matrix
                    // then receives exactly one product, so the threads write disjoint blocks).
                    let identity = |src: &[usize]| src.iter().enumerate().all(|(i, &s)| i == s);
                    let big = crate::threads::worth_splitting(asrc.len() * m * n * k, 1 << 21);
                    let ga = needs[0].then(|| {
                        let mut ga = vec![0.0; sa.numel()];
                        let dga = |i: usize, gai: &mut [f32]| {
                            let gm = MatRef::row_major(&g[i * m * n..(i + 1) * m * n], m, n);
                            let ib = bsrc[i];
                            let bm = MatRef::row_major(&b[ib * k * n..(ib + 1) * k * n], k, n);
                            sgemm(1.0, gm, bm.t(), 1.0, MatMut::row_major(gai, m, k));
                        };
                        if big && identity(&asrc) {
                            crate::threads::for_each_block(&mut ga, m * k, true, dga);
                        } else {
                            for (i, &ia) in asrc.iter().enumerate() {
                                dga(i, &mut ga[ia * m * k..(ia + 1) * m * k]);
                            }
                        }
                        Tensor::from_data(ga, sa)
                    });
                    let gb = needs[1].then(|| {
                        let mut gb = vec![0.0; sb.numel()];
                        let dgb = |i: usize, gbi: &mut [f32]| {
                            let ia = asrc[i];
                            let am = MatRef::row_major(&a[ia * m * k..(ia + 1) * m * k], m, k);
                            let gm = MatRef::row_major(&g[i * m * n..(i + 1) * m * n], m, n);
                            sgemm(1.0, am.t(), gm, 1.0, MatMut::row_major(gbi, k, n));
                        };
                        if big && identity(&bsrc) {
                            crate::threads::for_each_block(&mut gb, k * n, true, dgb);
                        } else {
                            for (i, &ib) in bsrc.iter().enumerate() {
                                dgb(i, &mut gb[ib * k * n..(ib + 1) * k * n]);
                            }
                        }
                        Tensor::from_data(gb, sb)
                    });
                    Ok(smallvec![ga, gb])
                }
            },
        ))
    }
}

impl Tensor {
    /// `x·Wᵀ + b`, the Linear layer's op, fused: `W` is `[out, in]` as in PyTorch and is read
    /// transposed through strides, never copied. `x` is `[..., in]`; leading axes are flattened.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.linear_then(weight, bias, Epilogue::None)
    }

    /// `relu(x·Wᵀ + b)` as one op: the ReLU is applied by the GEMM to each tile of the output as
    /// it is finished (no separate pass over the activations, no pre-activation buffer), and the
    /// backward pass masks the output gradient with `y > 0` (which is `x·Wᵀ + b > 0`). Equal to
    /// `x.linear(w, b)?.relu()` in value and gradients.
    pub fn linear_relu(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.linear_then(weight, bias, Epilogue::Relu)
    }

    /// `gelu(x·Wᵀ + b)`. Without gradients (inference) the GELU is applied by the GEMM to each
    /// finished tile, so the pre-activation is never written out; with gradients it is kept for
    /// GELU's backward pass, and this is `x.linear(w, b)?.gelu()`.
    pub fn linear_gelu(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let recording = crate::autodiff::is_grad_enabled()
            && [Some(self), Some(weight), bias]
                .into_iter()
                .flatten()
                .any(Tensor::requires_grad_flag);
        if recording {
            return Ok(self.linear(weight, bias)?.gelu());
        }
        self.linear_then(weight, bias, Epilogue::Gelu)
    }

    fn linear_then(&self, weight: &Tensor, bias: Option<&Tensor>, ep: Epilogue) -> Result<Tensor> {
        let op = match ep {
            Epilogue::None => "linear",
            Epilogue::Relu => "linear_relu",
            Epilogue::Gelu => "linear_gelu",
        };
        if weight.rank() != 2 || self.rank() == 0 {
            bail!(
                op,
                "expects input [..., in] and weight [out, in], got {} and {}",
                self.shape(),
                weight.shape()
            );
        }
        let (out_f, in_f) = (weight.dims()[0], weight.dims()[1]);
        let k = *self.dims().last().unwrap_or(&0);
        if k != in_f {
            bail!(
                op,
                "input {} has {k} features but the weight {} expects {in_f}",
                self.shape(),
                weight.shape()
            );
        }
        if let Some(b) = bias {
            if b.dims() != [out_f] {
                bail!(
                    "linear",
                    "bias shape {} does not match the {out_f} outputs of weight {}",
                    b.shape(),
                    weight.shape()
                );
            }
        }
        let m = self.numel() / k.max(1);
        crate::tensor::budget::check(op, &[m, out_f])?;
        let (x, w) = (self.data(), weight.data());
        let (xm, wt) = (
            MatRef::row_major(&x, m, k),
            MatRef::row_major(&w, out_f, k).t(),
        );
        // The bias is added to each tile as it is finished, as is the activation.
        let bias_data = bias.map(Tensor::data);
        let y = sgemm_new(1.0, xm, wt, bias_data.as_deref(), ep);
        let y = Buffer::new(y);
        // The ReLU's backward needs only where the output is positive: the output itself.
        let kept = (ep == Epilogue::Relu).then(|| y.clone());
        let mut out: Dims = self.dims()[..self.rank() - 1].iter().copied().collect();
        out.push(out_f);
        let (sx, sw) = (self.shape().clone(), weight.shape().clone());
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(record(op, y, Shape(out), &inputs, move || {
            move |g: &Tensor, needs: &[bool]| {
                // dx = G·W, dW = Gᵀ·x, db = column sums of G (G masked by y > 0 after a ReLU).
                let g = g.data();
                let masked: Option<Vec<f32>> = kept.as_ref().map(|y| {
                    g.iter()
                        .zip(y.iter())
                        .map(|(&gv, &yv)| if yv > 0.0 { gv } else { 0.0 })
                        .collect()
                });
                let g: &[f32] = masked.as_deref().unwrap_or(&g);
                if ep == Epilogue::Gelu {
                    // Not reached: `linear_gelu` records the composed ops when a gradient is
                    // wanted.
                    bail!("linear_gelu", "the fused form has no backward pass");
                }
                // The bias's gradient first, while G (just written by the op after this one)
                // is still in cache: it reads G once more, at memory speed after the products.
                let gb = (needs.len() == 3 && needs[2]).then(|| {
                    let mut gb = vec![0.0; out_f];
                    crate::kernels::vmath::add_rows(&mut gb, g);
                    Tensor::from_data(gb, Shape::new(&[out_f]))
                });
                let gm = MatRef::row_major(g, m, out_f);
                let gx = needs[0].then(|| {
                    let w = MatRef::row_major(&w, out_f, k);
                    Tensor::from_data(sgemm_new(1.0, gm, w, None, Epilogue::None), sx)
                });
                let gw = needs[1].then(|| {
                    let x = MatRef::row_major(&x, m, k);
                    Tensor::from_data(sgemm_new(1.0, gm.t(), x, None, Epilogue::None), sw)
                });
                let mut grads: crate::autodiff::Grads = smallvec![gx, gw];
                if needs.len() == 3 {
                    grads.push(gb);
                }
                Ok(grads)
            }
        }))
    }
}
