//! The tensor: an f32 array with a shape, and its place in the autodiff graph.
//!
//! # Design
//! A [`Tensor`] is a handle (`Arc`) to an immutable node: a shape, a buffer, and — when it was made by
//! an op on tensors that require grad — a [`GradFn`](crate::autodiff::GradFn) linking it to its inputs.
//! Cloning a tensor is one atomic increment.
//!
//! *Storage* is contiguous and row-major, held in an `Arc<Vec<f32>>` shared between tensors that view
//! the same numbers (a reshape, a leading-axis narrow). The buffer sits behind a lock only so that an
//! optimizer can assign new values to a parameter in place and every holder of that parameter sees them:
//! reading takes a snapshot (an `Arc` clone) and releases the lock, so kernels run lock-free on plain
//! slices, and a snapshot saved for backward is never changed under it (an assignment while a snapshot
//! is alive copies instead of writing through it).
//!
//! *The graph* is the tape. Each recorded op stores its inputs and its backward rule next to its output;
//! `backward()` orders the reachable nodes (an iterative depth-first walk, so deep graphs cannot overflow
//! the stack), walks them from the output back to the leaves, and frees each node's inputs and saved
//! values as it goes. There is no global tape and no global lock: each thread records its own graphs.

pub mod budget;
pub mod creation;
pub mod display;
pub mod rng;
pub mod shape;

use std::ops::Deref;
use std::sync::{Arc, Mutex, RwLock};

use crate::autodiff::GradFn;
use crate::error::{bail, Result};
pub use shape::Shape;

/// An f32 tensor. See the [module documentation](self) for how storage and the graph work.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) shape: Shape,
    pub(crate) buffer: RwLock<Buffer>,
    /// Whether gradients flow to this tensor: set on leaves by [`Tensor::requires_grad`], and on
    /// every output of a recorded op.
    pub(crate) requires_grad: bool,
    /// How this tensor was computed; `None` for leaves and for anything computed without grad.
    pub(crate) grad_fn: Option<GradFn>,
    /// The accumulated gradient of a leaf (`.grad` in PyTorch).
    pub(crate) grad: Mutex<Option<Tensor>>,
}

/// A read-only snapshot of a tensor's numbers: derefs to the `[f32]` slice, row-major.
#[derive(Clone)]
pub struct Buffer {
    data: Arc<Vec<f32>>,
    offset: usize,
    len: usize,
}

impl Buffer {
    pub(crate) fn new(data: Vec<f32>) -> Buffer {
        let len = data.len();
        Buffer {
            data: Arc::new(data),
            offset: 0,
            len,
        }
    }

    /// The same storage, `len` elements from `offset` (relative to this view).
    pub(crate) fn view(&self, offset: usize, len: usize) -> Buffer {
        debug_assert!(offset + len <= self.len);
        Buffer {
            data: self.data.clone(),
            offset: self.offset + offset,
            len,
        }
    }

    /// Mutable access when this snapshot is the only holder of the whole storage.
    pub(crate) fn get_mut(&mut self) -> Option<&mut [f32]> {
        let (offset, len) = (self.offset, self.len);
        Arc::get_mut(&mut self.data).map(|v| &mut v[offset..offset + len])
    }
}

impl Deref for Buffer {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data[self.offset..self.offset + self.len]
    }
}

impl Tensor {
    /// A tensor with no graph behind it. `data.len()` must equal the shape's element count.
    pub(crate) fn from_parts(
        buffer: Buffer,
        shape: Shape,
        requires_grad: bool,
        grad_fn: Option<GradFn>,
    ) -> Tensor {
        debug_assert_eq!(
            buffer.len,
            shape.numel(),
            "buffer length does not match shape {shape}"
        );
        Tensor(Arc::new(Inner {
            shape,
            buffer: RwLock::new(buffer),
            requires_grad,
            grad_fn,
            grad: Mutex::new(None),
        }))
    }

    /// A constant tensor owning `data`, which must hold `shape.numel()` values.
    pub(crate) fn from_data(data: Vec<f32>, shape: Shape) -> Tensor {
        Tensor::from_parts(Buffer::new(data), shape, false, None)
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.0.shape
    }

    /// The extent of each axis.
    pub fn dims(&self) -> &[usize] {
        self.0.shape.dims()
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.0.shape.rank()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.0.shape.numel()
    }

    /// The extent of one axis (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        Ok(self.dims()[self.shape().axis("dim", axis)?])
    }

    /// A snapshot of the numbers, row-major. Cheap: no copy.
    pub fn data(&self) -> Buffer {
        self.0
            .buffer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The buffer, taken without a copy when this is the last handle to the tensor.
    pub(crate) fn into_buffer(self) -> Buffer {
        match Arc::try_unwrap(self.0) {
            Ok(mut inner) => {
                let buf = inner.buffer.get_mut().unwrap_or_else(|e| e.into_inner());
                std::mem::replace(buf, Buffer::new(Vec::new()))
            }
            Err(shared) => Tensor(shared).data(),
        }
    }

    /// The numbers, copied into a `Vec`, row-major.
    pub fn to_vec(&self) -> Vec<f32> {
        self.data().to_vec()
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            bail!(
                "item",
                "only a one-element tensor has an item; this one has shape {}",
                self.shape()
            );
        }
        Ok(self.data()[0])
    }

    /// The value at a full index (one entry per axis).
    pub fn get(&self, index: &[usize]) -> Result<f32> {
        if index.len() != self.rank() {
            bail!(
                "get",
                "index {index:?} has {} entries but the tensor has {} axes (shape {})",
                index.len(),
                self.rank(),
                self.shape()
            );
        }
        let mut flat = 0;
        for (axis, (&i, &d)) in index.iter().zip(self.dims()).enumerate() {
            if i >= d {
                bail!(
                    "get",
                    "index {i} is out of range for axis {axis} of extent {d} (shape {})",
                    self.shape()
                );
            }
            flat = flat * d + i;
        }
        Ok(self.data()[flat])
    }

    /// Whether gradients flow to this tensor.
    pub fn requires_grad_flag(&self) -> bool {
        self.0.requires_grad
    }

    /// This tensor as a leaf that gradients flow to (same numbers, no copy), as
    /// `torch.Tensor.requires_grad_()` does. A non-leaf is detached first.
    pub fn requires_grad(&self) -> Tensor {
        Tensor::from_parts(self.data(), self.shape().clone(), true, None)
    }

    /// Whether this tensor is a leaf of the graph (made by the user, not recorded from an op).
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn.is_none()
    }

    /// The name of the op that computed this tensor, if it was recorded.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.grad_fn.as_ref().map(|g| g.op)
    }

    /// The same numbers, cut from the graph: gradients will not flow through the result.
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(self.data(), self.shape().clone(), false, None)
    }

    /// The gradient accumulated into this leaf by `backward()`, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Replaces the accumulated gradient.
    pub fn set_grad(&self, grad: Option<Tensor>) -> Result<()> {
        if let Some(g) = &grad {
            if g.shape() != self.shape() {
                bail!(
                    "set_grad",
                    "gradient shape {} does not match tensor shape {}",
                    g.shape(),
                    self.shape()
                );
            }
        }
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = grad.map(|g| g.detach());
        Ok(())
    }

    /// Whether two handles refer to the same tensor node.
    pub fn same_node(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Updates this tensor's numbers in place, without recording anything: every handle to this
    /// tensor sees the new values (this is how optimizers update parameters). Writes through
    /// when nothing else holds the storage, otherwise copies first so that snapshots saved for a
    /// backward pass keep the values they were taken with.
    pub fn update(&self, f: impl FnOnce(&mut [f32])) {
        let mut guard = self.0.buffer.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slice) = guard.get_mut() {
            f(slice);
            return;
        }
        let mut copy = guard.to_vec();
        f(&mut copy);
        *guard = Buffer::new(copy);
    }

    /// Overwrites this tensor's numbers with `src`'s (same shape), in place like [`Tensor::update`].
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            bail!(
                "assign",
                "cannot assign a tensor of shape {} to one of shape {}",
                src.shape(),
                self.shape()
            );
        }
        let data = src.data();
        self.update(|dst| dst.copy_from_slice(&data));
        Ok(())
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
