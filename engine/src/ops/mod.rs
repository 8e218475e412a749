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

use std::mem::MaybeUninit;

use crate::tensor::shape::{broadcast_strides, for_each_run};
use crate::tensor::{Buffer, Shape};

/// An element of an op's output buffer that is written before anything reads it: buffers every
/// element of which an op writes are not zeroed first (for a large one that is a pass over memory
/// as long as a cheap op; `vec![0.0; n]` reuses a cached block and clears it).
pub(crate) type Out = MaybeUninit<f32>;

/// `len` elements not written yet.
pub(crate) fn uninit(len: usize) -> Vec<Out> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` needs no initialisation, and the capacity is `len`.
    unsafe { v.set_len(len) };
    v
}

/// The floats of a buffer every element of which has been written.
///
/// # Safety
/// Every element of `v` has been written.
pub(crate) unsafe fn into_floats(v: Vec<Out>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout (so the allocation's is the same), and the
    // caller promises every element holds a float; `v` is not dropped, so the allocation has one
    // owner.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}

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
