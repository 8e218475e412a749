//! Containers: Sequential, Residual (a skip connection) and Parallel (branches joined on an axis,
//! as in an Inception block), with builders for the ResNet basic block and an Inception block.

use super::layers::{Activation, Conv2d, MaxPool2d};
use super::norm::BatchNorm;
use super::Module;
use crate::error::{bail, Result};
use crate::ops::conv::Conv2dSpec;
use crate::ops::pool::PoolSpec;
use crate::tensor::Tensor;

/// Layers applied in order; children are named `0`, `1`, ... as in PyTorch.
#[derive(Default)]
pub struct Sequential {
    pub layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty stack.
    pub fn new() -> Sequential {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer (builder style).
    pub fn layer(mut self, layer: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a boxed layer.
    pub fn push(&mut self, layer: Box<dyn Module>) {
        self.layers.push(layer);
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        // A layer followed by an activation runs as one fused op when it has one (Linear with
        // ReLU, or GELU without gradients), unless hooks (summary, profiler) watch the layers one
        // by one.
        let fuse = !super::summary::hooks_active();
        let mut i = 0;
        while i < self.layers.len() {
            let layer = &self.layers[i];
            let next = self.layers.get(i + 1).and_then(|l| l.activation());
            let fused = next
                .filter(|_| fuse)
                .and_then(|act| layer.forward_activated(&h, act));
            let step = if fused.is_some() { 2 } else { 1 };
            h = fused.unwrap_or_else(|| layer.call(&h)).map_err(|e| {
                crate::Error::new(
                    e.op,
                    format!("{} (in layer {i}, {})", e.message, layer.describe()),
                )
            })?;
            i += step;
        }
        Ok(h)
    }
    fn describe(&self) -> String {
        format!("Sequential({} layers)", self.layers.len())
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.as_ref() as &dyn Module))
            .collect()
    }
}

/// `inner(x) + shortcut(x)`: a skip connection. Without a shortcut module the input is added as is
/// (shapes must then agree); a shortcut (e.g. a 1x1 convolution) adapts it when they do not.
pub struct Residual {
    pub inner: Box<dyn Module>,
    pub shortcut: Option<Box<dyn Module>>,
}

impl Residual {
    /// `inner(x) + x`.
    pub fn new(inner: impl Module + 'static) -> Residual {
        Residual {
            inner: Box::new(inner),
            shortcut: None,
        }
    }

    /// The ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN plus the input (through a 1x1 conv + BN
    /// when the channels or the stride change). Follow it with a ReLU, as ResNet does.
    pub fn basic_block(in_channels: usize, out_channels: usize, stride: usize) -> Residual {
        let conv = |i, o, s| {
            Conv2d::with_spec(
                i,
                o,
                (3, 3),
                Conv2dSpec {
                    stride: (s, s),
                    padding: (1, 1),
                    ..Default::default()
                },
                false,
            )
        };
        let inner = Sequential::new()
            .layer(conv(in_channels, out_channels, stride))
            .layer(BatchNorm::new_2d(out_channels))
            .layer(Activation::ReLU)
            .layer(conv(out_channels, out_channels, 1))
            .layer(BatchNorm::new_2d(out_channels));
        let shortcut = (stride != 1 || in_channels != out_channels).then(|| {
            let proj = Conv2d::with_spec(
                in_channels,
                out_channels,
                (1, 1),
                Conv2dSpec {
                    stride: (stride, stride),
                    ..Default::default()
                },
                false,
            );
            Box::new(
                Sequential::new()
                    .layer(proj)
                    .layer(BatchNorm::new_2d(out_channels)),
            ) as Box<dyn Module>
        });
        Residual {
            inner: Box::new(inner),
            shortcut,
        }
    }
}

impl Module for Residual {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.inner.call(x)?;
        let skip = match &self.shortcut {
            Some(s) => s.call(x)?,
            None => x.clone(),
        };
        if y.shape() != skip.shape() {
            bail!("Residual", "the block's output {} and the skip connection {} differ in shape; give the block a shortcut that maps one to the other", y.shape(), skip.shape());
        }
        y.add(&skip)
    }
    fn describe(&self) -> String {
        "Residual".into()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut c: Vec<(String, &dyn Module)> = vec![("inner".into(), self.inner.as_ref())];
        if let Some(s) = &self.shortcut {
            c.push(("shortcut".into(), s.as_ref()));
        }
        c
    }
}

/// Runs each branch on the same input and joins the outputs along `axis` (1 = channels).
pub struct Parallel {
    pub branches: Vec<Box<dyn Module>>,
    pub axis: isize,
}

impl Parallel {
    /// The Inception block (GoogLeNet): 1x1, 1x1→3x3, 1x1→5x5 and 3x3-max-pool→1x1 branches, each
    /// followed by ReLU, joined on channels. Spatial size is kept.
    pub fn inception(
        in_channels: usize,
        c1: usize,
        c3: (usize, usize),
        c5: (usize, usize),
        pool_proj: usize,
    ) -> Parallel {
        let relu = || Activation::ReLU;
        let b1 = Sequential::new()
            .layer(Conv2d::new(in_channels, c1, 1, 0))
            .layer(relu());
        let b3 = Sequential::new()
            .layer(Conv2d::new(in_channels, c3.0, 1, 0))
            .layer(relu())
            .layer(Conv2d::new(c3.0, c3.1, 3, 1))
            .layer(relu());
        let b5 = Sequential::new()
            .layer(Conv2d::new(in_channels, c5.0, 1, 0))
            .layer(relu())
            .layer(Conv2d::new(c5.0, c5.1, 5, 2))
            .layer(relu());
        let pool = MaxPool2d(PoolSpec {
            kernel: (3, 3),
            stride: (1, 1),
            padding: (1, 1),
        });
        let bp = Sequential::new()
            .layer(pool)
            .layer(Conv2d::new(in_channels, pool_proj, 1, 0))
            .layer(relu());
        Parallel {
            branches: vec![Box::new(b1), Box::new(b3), Box::new(b5), Box::new(bp)],
            axis: 1,
        }
    }
}

impl Module for Parallel {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let outs = self
            .branches
            .iter()
            .map(|b| b.call(x))
            .collect::<Result<Vec<_>>>()?;
        Tensor::concat(&outs, self.axis)
    }
    fn describe(&self) -> String {
        format!(
            "Parallel({} branches, joined on axis {})",
            self.branches.len(),
            self.axis
        )
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.branches
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("branches.{i}"), b.as_ref() as &dyn Module))
            .collect()
    }
}
