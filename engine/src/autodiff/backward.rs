//! The backward walk: order the graph, then visit it from the output to the leaves.

use std::collections::HashMap;

use smallvec::SmallVec;

use super::no_grad;
use crate::error::{bail, Error, Result};
use crate::tensor::Tensor;

impl Tensor {
    /// Computes the gradient of this scalar with respect to every leaf that requires grad, and adds
    /// it to that leaf's [`grad`](Tensor::grad). The graph is freed as it is walked: call this once
    /// per forward pass.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            bail!("backward", "backward() needs a one-element output (a loss), got shape {}; sum or average it first, or use backward_with(grad)", self.shape());
        }
        self.backward_with(&Tensor::ones(self.shape().clone()))
    }

    /// Backward from a non-scalar output, given the gradient of some scalar with respect to it.
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        if grad.shape() != self.shape() {
            bail!(
                "backward",
                "the gradient's shape {} does not match the output's shape {}",
                grad.shape(),
                self.shape()
            );
        }
        if !self.0.requires_grad {
            bail!("backward", "this tensor does not require grad: no input of the ops that made it was marked with requires_grad(), or it was computed under no_grad");
        }
        no_grad(|| walk(self, grad.detach()))
    }
}

/// The nodes reachable from `root` through recorded ops, outputs before inputs (a reverse
/// topological order), found with an explicit stack rather than recursion.
fn reverse_topological_order(root: &Tensor) -> Result<Vec<Tensor>> {
    let mut order = Vec::new();
    let mut visited = std::collections::HashSet::new();
    // (node, whether its inputs have been pushed already)
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        let Some(gf) = t.0.grad_fn.as_ref() else {
            continue;
        };
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.0.key()) {
            continue;
        }
        let inputs: SmallVec<[Tensor; 2]> = {
            let body = gf.body.lock().unwrap_or_else(|e| e.into_inner());
            match body.as_ref() {
                Some(b) => b.inputs.clone(),
                None => bail!("backward", "the graph through `{}` was already freed by an earlier backward(); run the forward pass again before calling backward() a second time", gf.op),
            }
        };
        stack.push((t, true));
        for input in inputs {
            if input.0.grad_fn.is_some() && !visited.contains(&input.0.key()) {
                stack.push((input, false));
            }
        }
    }
    order.reverse();
    Ok(order)
}

fn walk(root: &Tensor, seed: Tensor) -> Result<()> {
    if root.is_leaf() {
        accumulate_leaf(root, seed)?;
        return Ok(());
    }
    let order = reverse_topological_order(root)?;
    // Gradients of the intermediate tensors, removed (freed) as soon as their node has been visited.
    let mut grads: HashMap<usize, Tensor> = HashMap::with_capacity(order.len());
    grads.insert(root.0.key(), seed);
    for node in order {
        let gf = node
            .0
            .grad_fn
            .as_ref()
            .expect("ordered nodes all have a grad_fn");
        let body = gf.body.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(body) = body else { continue };
        let Some(grad) = grads.remove(&node.0.key()) else {
            continue;
        };
        let needs: SmallVec<[bool; 2]> = body.inputs.iter().map(|t| t.0.requires_grad).collect();
        let input_grads = (body.backward)(&grad, &needs)?;
        for ((input, g), need) in body.inputs.iter().zip(input_grads).zip(needs) {
            let Some(g) = g else { continue };
            if !need {
                continue;
            }
            if g.shape() != input.shape() {
                return Err(Error::new("backward", format!("internal error: `{}` produced a gradient of shape {} for an input of shape {}", gf.op, g.shape(), input.shape())));
            }
            if input.is_leaf() {
                accumulate_leaf(input, g)?;
            } else {
                match grads.remove(&input.0.key()) {
                    Some(prev) => grads.insert(input.0.key(), add_into(prev, &g)),
                    None => grads.insert(input.0.key(), g),
                };
            }
        }
    }
    Ok(())
}

thread_local! {
    /// When set, leaf gradients computed on this thread go here instead of into the leaves.
    static GRAD_SINK: std::cell::RefCell<Option<Vec<(Tensor, Tensor)>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (which calls `backward()`) and returns the leaf gradients it produced, instead of
/// adding them to the leaves' `grad`: each data-parallel shard computes its own gradients this way,
/// and the trainer sums them in a fixed order, so the result does not depend on thread timing.
pub fn capture_grads<T>(f: impl FnOnce() -> T) -> (T, Vec<(Tensor, Tensor)>) {
    let previous = GRAD_SINK.with(|s| s.replace(Some(Vec::new())));
    let out = f();
    let grads = GRAD_SINK.with(|s| s.replace(previous)).unwrap_or_default();
    (out, grads)
}

fn accumulate_leaf(leaf: &Tensor, g: Tensor) -> Result<()> {
    let captured = GRAD_SINK.with(|s| {
        let mut sink = s.borrow_mut();
        let Some(sink) = sink.as_mut() else {
            return false;
        };
        match sink.iter_mut().find(|(l, _)| l.same_node(leaf)) {
            Some((_, acc)) => *acc = add_into(std::mem::replace(acc, Tensor::scalar(0.0)), &g),
            None => sink.push((leaf.clone(), g.clone())),
        }
        true
    });
    if captured {
        return Ok(());
    }
    let mut slot = leaf.0.grad.lock().unwrap_or_else(|e| e.into_inner());
    *slot = Some(match slot.take() {
        Some(prev) => add_into(prev, &g),
        None => g,
    });
    Ok(())
}

/// `acc + g`, written into `acc`'s storage when nothing else holds it.
pub(crate) fn add_into(acc: Tensor, g: &Tensor) -> Tensor {
    let gd = g.data();
    let shape = acc.shape().clone();
    let mut buf = acc.into_buffer();
    if let Some(dst) = buf.get_mut() {
        crate::kernels::vmath::add_rows(dst, &gd);
        return Tensor::from_parts(buf, shape, false, None);
    }
    let data: Vec<f32> = buf.iter().zip(gd.iter()).map(|(a, b)| a + b).collect();
    Tensor::from_data(data, shape)
}
