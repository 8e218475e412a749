//! The ops on tensors, one file per family. In every file an op's forward and backward sit side by
//! side: the closure handed to `record` is the derivative of the code just above it.
//!
//! Every op returns a `Result` whose error names the op and the shapes; the operator sugar in
//! [`sugar`] (`&a + &b`) panics with that same message, for model code that knows its shapes.

pub mod attention;
pub mod binary;
pub mod conv;
pub mod layer_norm;
pub mod matmul;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod sugar;
pub mod unary;

use crate::tensor::shape::{broadcast_strides, for_each_run};
use crate::tensor::{Buffer, Shape};

/// The numbers of a tensor of shape `from` laid out at the broadcast shape `to` (no copy when the
/// shapes are equal).
pub(crate) fn expand(buf: &Buffer, from: &Shape, to: &Shape) -> Buffer {
    if from == to {
        return buf.clone();
    }
    let mut out = Vec::with_capacity(to.numel());
    let src = broadcast_strides(from, to);
    let last = to.rank().saturating_sub(1);
    let n = to.dims().last().copied().unwrap_or(1);
    let step = if to.rank() == 0 { 0 } else { src[last] };
    for_each_run(to.dims(), [&src], |[o]| {
        if step == 0 {
            out.extend(std::iter::repeat_n(buf[o], n));
        } else {
            out.extend_from_slice(&buf[o..o + n]);
        }
    });
    Buffer::new(out)
}
