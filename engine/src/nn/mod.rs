//! Neural-network building blocks with PyTorch's names and defaults.
//!
//! A [`Module`] owns its parameters (leaf tensors that require grad) and buffers (running
//! statistics), names its children, and computes `forward`. Containers run their children through
//! [`Module::call`], which also feeds the [`summary`] and profiler hooks, so a table of every
//! layer's output shape, parameters, time and memory comes for free.
//!
//! Parameter names follow PyTorch's `state_dict` (`0.weight`, `encoder.2.bias`), so a checkpoint
//! written here loads into the equivalent PyTorch model.

pub mod attention;
pub mod container;
pub mod init;
pub mod layers;
pub mod loss;
pub mod norm;
pub mod state;
pub mod summary;

use std::cell::{Cell, RefCell};

use crate::error::Result;
use crate::tensor::rng::Rng;
use crate::tensor::Tensor;

pub use attention::{MultiHeadAttention, TransformerBlock};
pub use container::{Parallel, Residual, Sequential};
pub use init::Init;
pub use layers::{
    Activation, AvgPool2d, Conv1d, Conv2d, Dropout, Embedding, Flatten, GlobalAvgPool2d, Linear,
    MaxPool1d, MaxPool2d,
};
pub use norm::{BatchNorm, LayerNorm};
pub use state::{load_state_dict, state_dict};
pub use summary::{summary, Summary};

/// Lets the provided methods of [`Module`] treat `self` as a `&dyn Module`; implemented for every
/// module automatically.
pub trait AsDynModule {
    /// `self` as a trait object.
    fn as_dyn(&self) -> &dyn Module;
}

impl<T: Module> AsDynModule for T {
    fn as_dyn(&self) -> &dyn Module {
        self
    }
}

/// A layer or a model: something with parameters that maps a tensor to a tensor.
pub trait Module: AsDynModule + Send + Sync {
    /// The computation. Containers should run children with [`Module::call`] instead.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// The layer's kind and configuration, e.g. `Linear(in=784, out=256)`.
    fn describe(&self) -> String;

    /// This layer's own parameters (not its children's), with their local names.
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// This layer's own buffers: state saved with the model but not trained (running statistics).
    fn own_buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// The child modules, with the names their parameters are prefixed by.
    fn children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }

    /// The attention weights of this layer's last forward pass, if it is an attention layer.
    fn last_attention(&self) -> Option<Tensor> {
        None
    }

    /// This layer followed by the activation `act`, as one fused op, if the layer has such a form
    /// (a Linear layer: ReLU, and GELU when no gradient is recorded, applied inside its GEMM).
    /// Containers use it for a layer followed by an activation when no hooks watch the layers one
    /// by one.
    fn forward_activated(&self, _x: &Tensor, _act: layers::Activation) -> Option<Result<Tensor>> {
        None
    }

    /// The activation function this layer is, if it is one (for [`Module::forward_activated`]).
    fn activation(&self) -> Option<layers::Activation> {
        None
    }

    /// Switches this layer's own train/eval behaviour (dropout, batch norm); see [`Module::train`].
    fn set_training_own(&self, _training: bool) {}

    /// `forward`, wrapped in the hooks that [`summary`] and the profiler use.
    fn call(&self, x: &Tensor) -> Result<Tensor> {
        if !summary::hooks_active() {
            return self.forward(x);
        }
        let token = summary::enter();
        let result = self.forward(x);
        summary::leave(token, self, result.as_ref().ok());
        result
    }

    /// Every parameter, depth first, named as in PyTorch's `state_dict`.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        visit(self.as_dyn(), "", &mut |prefix, m| {
            out.extend(
                m.own_parameters()
                    .into_iter()
                    .map(|(n, t)| (format!("{prefix}{n}"), t)),
            );
        });
        out
    }

    /// Every buffer, named as in PyTorch's `state_dict`.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        visit(self.as_dyn(), "", &mut |prefix, m| {
            out.extend(
                m.own_buffers()
                    .into_iter()
                    .map(|(n, t)| (format!("{prefix}{n}"), t)),
            );
        });
        out
    }

    /// The parameters, without names.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// The number of trainable numbers.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(Tensor::numel).sum()
    }

    /// Puts this module and all its children in training mode (`true`) or evaluation mode.
    fn train(&self, training: bool) {
        visit(self.as_dyn(), "", &mut |_, m| m.set_training_own(training));
    }

    /// Evaluation mode: dropout off, batch norm uses its running statistics.
    fn eval(&self) {
        self.train(false);
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }
}

/// The attention weights (`[B, heads, T, S]`) of every attention layer in `m` from its last forward
/// pass, with the layer's name, in order: what a lesson draws as heat maps.
pub fn attention_maps(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    visit(m, "", &mut |prefix, layer| {
        if let Some(w) = layer.last_attention() {
            out.push((prefix.trim_end_matches('.').to_string(), w));
        }
    });
    out
}

/// Calls `f(prefix, module)` for `m` and every descendant, depth first, in child order.
pub fn visit(m: &dyn Module, prefix: &str, f: &mut dyn FnMut(&str, &dyn Module)) {
    let mut stack: Vec<(String, &dyn Module)> = vec![(prefix.to_string(), m)];
    while let Some((p, m)) = stack.pop() {
        f(&p, m);
        for (name, c) in m.children().into_iter().rev() {
            stack.push((format!("{p}{name}."), c));
        }
    }
}

impl Module for Box<dyn Module> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        (**self).own_parameters()
    }
    fn own_buffers(&self) -> Vec<(String, Tensor)> {
        (**self).own_buffers()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        (**self).children()
    }
    fn set_training_own(&self, training: bool) {
        (**self).set_training_own(training)
    }
    fn last_attention(&self) -> Option<Tensor> {
        (**self).last_attention()
    }
    fn forward_activated(&self, x: &Tensor, act: layers::Activation) -> Option<Result<Tensor>> {
        (**self).forward_activated(x, act)
    }
    fn activation(&self) -> Option<layers::Activation> {
        (**self).activation()
    }
    fn call(&self, x: &Tensor) -> Result<Tensor> {
        (**self).call(x)
    }
}

thread_local! {
    /// A generator that layers drawing random numbers in `forward` (dropout) use instead of their
    /// own while set: data-parallel workers set one per shard so results do not depend on which
    /// thread ran first.
    static FORWARD_RNG: RefCell<Option<Rng>> = const { RefCell::new(None) };
    /// Whether batch norm updates its running statistics in training mode on this thread (only
    /// the first shard does, in data-parallel training).
    static UPDATE_RUNNING_STATS: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with `rng` as the source of dropout masks and with running-statistics updates on or
/// off, on this thread. Used by data-parallel training for each shard.
pub fn with_shard_context<T>(rng: Rng, update_running_stats: bool, f: impl FnOnce() -> T) -> T {
    let prev_rng = FORWARD_RNG.with(|r| r.replace(Some(rng)));
    let prev_stats = UPDATE_RUNNING_STATS.with(|c| c.replace(update_running_stats));
    struct Restore(Option<Rng>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORWARD_RNG.with(|r| *r.borrow_mut() = self.0.take());
            UPDATE_RUNNING_STATS.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(prev_rng, prev_stats);
    f()
}

/// Whether a shard context ([`with_shard_context`]) is set on this thread.
pub(crate) fn shard_context_active() -> bool {
    FORWARD_RNG.with(|r| r.borrow().is_some()) || !UPDATE_RUNNING_STATS.with(Cell::get)
}

/// Draws with the shard generator if one is set on this thread, else with `own`.
pub(crate) fn with_forward_rng<T>(own: &std::sync::Mutex<Rng>, f: impl FnOnce(&mut Rng) -> T) -> T {
    FORWARD_RNG.with(|r| match r.borrow_mut().as_mut() {
        Some(rng) => f(rng),
        None => f(&mut own.lock().unwrap_or_else(|e| e.into_inner())),
    })
}

pub(crate) fn updates_running_stats() -> bool {
    UPDATE_RUNNING_STATS.with(|c| c.get())
}
