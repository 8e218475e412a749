//! Multi-head attention and the pre-norm transformer block.

use std::sync::Mutex;

use super::container::Sequential;
use super::init::{draw_default, Init};
use super::layers::{Activation, Dropout, Linear};
use super::norm::LayerNorm;
use super::Module;
use crate::error::{bail, Result};
use crate::ops::attention::MASKED;
use crate::tensor::Tensor;

/// Scaled dot-product attention with `heads` heads over inputs `[B, T, E]` (batch first), with
/// PyTorch's `nn.MultiheadAttention` parameters: `in_proj_weight` `[3E, E]`, `in_proj_bias` `[3E]`
/// and the output projection `out_proj`.
pub struct MultiHeadAttention {
    pub in_proj_weight: Tensor,
    pub in_proj_bias: Tensor,
    pub out_proj: Linear,
    pub heads: usize,
    /// Whether position t may only attend to positions ≤ t (a language model's mask).
    pub causal: bool,
    last_weights: Mutex<Option<Tensor>>,
}

impl MultiHeadAttention {
    /// `heads` heads over width `embed_dim` (which they must divide); Xavier-uniform input
    /// projection and zero biases, as PyTorch initialises them.
    pub fn new(embed_dim: usize, heads: usize, causal: bool) -> Result<MultiHeadAttention> {
        if heads == 0 || !embed_dim.is_multiple_of(heads) {
            bail!(
                "MultiHeadAttention",
                "{heads} heads do not divide the width {embed_dim}"
            );
        }
        let mut out_proj = Linear::new(embed_dim, embed_dim);
        out_proj.bias = Some(Tensor::zeros([embed_dim]).requires_grad());
        Ok(MultiHeadAttention {
            in_proj_weight: draw_default(
                Init::XavierUniform,
                [3 * embed_dim, embed_dim],
                embed_dim,
                3 * embed_dim,
            )
            .requires_grad(),
            in_proj_bias: Tensor::zeros([3 * embed_dim]).requires_grad(),
            out_proj,
            heads,
            causal,
            last_weights: Mutex::new(None),
        })
    }

    fn width(&self) -> usize {
        self.in_proj_weight.dims()[1]
    }

    /// Attention of `query` `[B, T, E]` over `key`/`value` `[B, S, E]`. `key_padding` (`[B, S]`,
    /// non-zero = padding) hides positions. Returns the output `[B, T, E]` and the attention
    /// weights `[B, heads, T, S]` (each row sums to 1).
    pub fn attend(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        key_padding: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let e = self.width();
        for (name, t) in [("query", query), ("key", key), ("value", value)] {
            if t.rank() != 3 || t.dims()[2] != e {
                bail!(
                    "MultiHeadAttention",
                    "{name} must be [batch, length, {e}], got {}",
                    t.shape()
                );
            }
        }
        let (b, t, s) = (query.dims()[0], query.dims()[1], key.dims()[1]);
        if key.dims()[0] != b || value.dims()[..2] != key.dims()[..2] {
            bail!(
                "MultiHeadAttention",
                "query {}, key {} and value {} disagree on batch or length",
                query.shape(),
                key.shape(),
                value.shape()
            );
        }
        let (h, d) = (self.heads, e / self.heads);
        if key_padding.is_none() {
            // The fused ops: the heads are strided views of the projections, no permutes.
            let (out, weights) = if query.same_node(key) && key.same_node(value) {
                // Self-attention: one projection by the stacked weights makes Q, K and V side by
                // side, and the op reads its heads from that in place.
                let qkv = query.linear(&self.in_proj_weight, Some(&self.in_proj_bias))?;
                qkv.multi_head_self_attention(h, self.causal)?
            } else {
                let lin = |x: &Tensor, i: usize| -> Result<Tensor> {
                    let w = self.in_proj_weight.narrow(0, i * e, e)?;
                    let bias = self.in_proj_bias.narrow(0, i * e, e)?;
                    x.linear(&w, Some(&bias))
                };
                let (q, k, v) = (lin(query, 0)?, lin(key, 1)?, lin(value, 2)?);
                q.multi_head_attention(&k, &v, h, self.causal)?
            };
            *self.last_weights.lock().unwrap_or_else(|e| e.into_inner()) = Some(weights.clone());
            return Ok((self.out_proj.call(&out)?, weights));
        }
        let proj = |x: &Tensor, i: usize| -> Result<Tensor> {
            let w = self.in_proj_weight.narrow(0, i * e, e)?;
            let bias = self.in_proj_bias.narrow(0, i * e, e)?;
            // [B, L, E] -> [B, L, H, D] -> [B, H, L, D]
            x.linear(&w, Some(&bias))?
                .reshape_to([x.dims()[0], x.dims()[1], h, d])?
                .permute(&[0, 2, 1, 3])
        };
        let (q, k, v) = (proj(query, 0)?, proj(key, 1)?, proj(value, 2)?);
        let mut scores = q
            .matmul(&k.transpose(-2, -1)?)?
            .mul_scalar(1.0 / (d as f32).sqrt());
        if self.causal {
            let mask: Vec<f32> = (0..t * s)
                .map(|i| if i % s > i / s { MASKED } else { 0.0 })
                .collect();
            scores = scores.add(&Tensor::from_vec(mask, [t, s])?)?;
        }
        if let Some(pad) = key_padding {
            if pad.dims() != [b, s] {
                bail!(
                    "MultiHeadAttention",
                    "key_padding mask must be [batch, key length] = [{b}, {s}], got {}",
                    pad.shape()
                );
            }
            let mask = pad
                .ne(&Tensor::scalar(0.0))?
                .mul_scalar(MASKED)
                .reshape_to([b, 1, 1, s])?;
            scores = scores.add(&mask)?;
        }
        let weights = scores.softmax(-1)?;
        let out = weights
            .matmul(&v)?
            .permute(&[0, 2, 1, 3])?
            .reshape_to([b, t, e])?;
        *self.last_weights.lock().unwrap_or_else(|e| e.into_inner()) = Some(weights.detach());
        Ok((self.out_proj.call(&out)?, weights))
    }

    /// The attention weights of the last forward pass, `[B, heads, T, S]`, for drawing.
    pub fn last_weights(&self) -> Option<Tensor> {
        self.last_weights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Module for MultiHeadAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.attend(x, x, x, None)?.0)
    }
    fn last_attention(&self) -> Option<Tensor> {
        self.last_weights()
    }
    fn describe(&self) -> String {
        format!(
            "MultiHeadAttention(width={}, heads={}{})",
            self.width(),
            self.heads,
            if self.causal { ", causal" } else { "" }
        )
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("in_proj_weight".into(), self.in_proj_weight.clone()),
            ("in_proj_bias".into(), self.in_proj_bias.clone()),
        ]
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("out_proj".into(), &self.out_proj)]
    }
}

/// The pre-norm transformer block: `x + attn(ln1(x))`, then `h + mlp(ln2(h))`, with a GELU MLP
/// four times as wide as the model.
pub struct TransformerBlock {
    pub ln1: LayerNorm,
    pub attn: MultiHeadAttention,
    pub ln2: LayerNorm,
    pub mlp: Sequential,
}

impl TransformerBlock {
    /// A block of width `d_model` with `heads` heads; `dropout` after the MLP's hidden layer (0 for none).
    pub fn new(
        d_model: usize,
        heads: usize,
        causal: bool,
        dropout: f32,
    ) -> Result<TransformerBlock> {
        let mut mlp = Sequential::new()
            .layer(Linear::new(d_model, 4 * d_model))
            .layer(Activation::GELU);
        if dropout > 0.0 {
            mlp = mlp.layer(Dropout::new(dropout)?);
        }
        let mlp = mlp.layer(Linear::new(4 * d_model, d_model));
        Ok(TransformerBlock {
            ln1: LayerNorm::new(&[d_model]),
            attn: MultiHeadAttention::new(d_model, heads, causal)?,
            ln2: LayerNorm::new(&[d_model]),
            mlp,
        })
    }
}

impl Module for TransformerBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = x.add(&self.attn.call(&self.ln1.call(x)?)?)?;
        h.add(&self.mlp.call(&self.ln2.call(&h)?)?)
    }
    fn describe(&self) -> String {
        format!(
            "TransformerBlock(width={}, heads={})",
            self.attn.width(),
            self.attn.heads
        )
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![
            ("ln1".into(), &self.ln1),
            ("attn".into(), &self.attn),
            ("ln2".into(), &self.ln2),
            ("mlp".into(), &self.mlp),
        ]
    }
}
