//! Reverse-mode automatic differentiation: recording ops ([`record`]), the grad mode switch
//! ([`no_grad`]), and the backward walk ([`backward`](crate::Tensor::backward)).

mod backward;

pub(crate) use backward::add_into;
pub use backward::capture_grads;

use smallvec::SmallVec;
use std::cell::Cell;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::tensor::{Buffer, Inner, Shape, Tensor};

/// The gradients an op's backward rule returns, one per input (`None` where not needed).
pub type Grads = SmallVec<[Option<Tensor>; 2]>;

/// An op's backward rule: given the gradient of the output and which inputs need a gradient,
/// return the gradient of each input (shaped like that input).
pub(crate) type BackwardFn = Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Grads> + Send>;

/// The record of one op on the tape: its name, its inputs and its backward rule. The inputs and
/// the rule (with the values it saved) are dropped as soon as the backward walk has used them.
pub(crate) struct GradFn {
    pub(crate) op: &'static str,
    pub(crate) body: Mutex<Option<NodeBody>>,
}

pub(crate) struct NodeBody {
    pub(crate) inputs: SmallVec<[Tensor; 2]>,
    pub(crate) backward: BackwardFn,
}

impl Drop for GradFn {
    // Dropping a long chain of nodes recursively (node -> input -> its node -> ...) would overflow
    // the stack on a deep graph, so unlink it iteratively: take the inputs of every node we hold
    // the last reference to and drop it with an empty body.
    fn drop(&mut self) {
        let body = self
            .body
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(body) = body else { return };
        let mut stack: Vec<Tensor> = body.inputs.into_vec();
        drop(body.backward);
        while let Some(t) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(t.0) {
                if let Some(gf) = inner.grad_fn.as_mut() {
                    if let Some(b) = gf.body.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                        stack.extend(b.inputs);
                    }
                }
            }
        }
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread record a graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped (also on panic).
pub struct GradModeGuard {
    previous: bool,
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Turns recording on or off on this thread until the guard is dropped.
pub fn set_grad_enabled(enabled: bool) -> GradModeGuard {
    let previous = GRAD_ENABLED.with(|g| g.replace(enabled));
    GradModeGuard { previous }
}

/// Runs `f` without recording a graph on this thread (PyTorch's `torch.no_grad()`).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _guard = set_grad_enabled(false);
    f()
}

/// Makes the output tensor of an op. When grad mode is on and any input requires grad, the op is
/// recorded: `make_backward` is called (only then, so ops pay nothing for saving values when no
/// gradient is wanted) and its rule is stored with the inputs.
pub(crate) fn record<F>(
    op: &'static str,
    data: Buffer,
    shape: Shape,
    inputs: &[&Tensor],
    make_backward: impl FnOnce() -> F,
) -> Tensor
where
    F: FnOnce(&Tensor, &[bool]) -> Result<Grads> + Send + 'static,
{
    if !is_grad_enabled() || !inputs.iter().any(|t| t.0.requires_grad) {
        return Tensor::from_parts(data, shape, false, None);
    }
    let body = NodeBody {
        inputs: inputs.iter().map(|t| (*t).clone()).collect(),
        backward: Box::new(make_backward()),
    };
    let grad_fn = GradFn {
        op,
        body: Mutex::new(Some(body)),
    };
    Tensor::from_parts(data, shape, true, Some(grad_fn))
}

impl Inner {
    pub(crate) fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }
}
