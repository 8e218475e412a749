//! gradbook's engine: f32 tensors, a tape that differentiates them, and the ops between them.
//!
//! ```
//! use engine::Tensor;
//! let w = Tensor::from_vec(vec![0.5, -1.0], [2]).unwrap().requires_grad();
//! let x = Tensor::from_vec(vec![2.0, 3.0], [2]).unwrap();
//! let loss = (&w * &x).sum_all();
//! loss.backward().unwrap();
//! assert_eq!(w.grad().unwrap().to_vec(), vec![2.0, 3.0]);
//! ```

pub mod autodiff;
pub mod data;
pub mod error;
pub mod io;
pub mod kernels;
pub mod linalg;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod tensor;
pub mod text;
pub mod threads;
pub mod train;
pub mod workloads;

pub use autodiff::{is_grad_enabled, no_grad, set_grad_enabled};
pub use error::{Error, Result};
pub use kernels::alloc::Allocator;
pub use tensor::rng::{manual_seed, Rng};
pub use tensor::{Buffer, Shape, Tensor};
