//! Training: [`fit`] (epochs, batches, metrics, validation, early stopping, data-parallel shards),
//! [`evaluate`] and [`predict`], and a progress bar. The loop reports [`Event`]s to an observer
//! and never draws anything itself, so the same loop serves a terminal, the notebook and tests.

pub mod fit;
pub mod metrics;
pub mod progress;

pub use fit::{
    evaluate, fit, predict, step, Control, EarlyStopping, Event, FitConfig, History, Loss,
};
pub use metrics::Metric;
pub use progress::ProgressBar;
