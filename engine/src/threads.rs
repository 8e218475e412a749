//! The engine's one rayon pool. Its size defaults to the number of cores, can be set with the
//! `GRADBOOK_THREADS` environment variable, and changed at run time with [`set_num_threads`].
//! rayon's workers sleep when idle rather than spin, so a busy machine slows the engine down
//! gracefully instead of stalling it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, Result};

static POOL: OnceLock<RwLock<Arc<rayon::ThreadPool>>> = OnceLock::new();
static FLUSH_DENORMAL: AtomicBool = AtomicBool::new(false);

fn default_threads() -> usize {
    std::env::var("GRADBOOK_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn build(n: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("gradbook-{i}"))
        .start_handler(|_| {
            crate::kernels::fp::set_flush_denormal_on_this_thread(
                FLUSH_DENORMAL.load(Ordering::Relaxed),
            )
        })
        .build()
        .map(Arc::new)
        .map_err(|e| Error::new("threads", format!("cannot start {n} worker threads: {e}")))
}

/// The engine's pool (built on first use).
pub fn pool() -> Arc<rayon::ThreadPool> {
    let lock = POOL.get_or_init(|| {
        let pool = build(default_threads())
            .or_else(|_| build(1))
            .expect("a one-thread pool can always be built");
        RwLock::new(pool)
    });
    lock.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The number of worker threads the engine uses.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Resizes the engine's pool (work already running finishes on the old one).
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::new(
            "set_num_threads",
            "the number of threads must be at least 1",
        ));
    }
    let new = build(n)?;
    let lock = POOL.get_or_init(|| RwLock::new(new.clone()));
    *lock.write().unwrap_or_else(|e| e.into_inner()) = new;
    Ok(())
}

/// Treats denormal numbers (below 1.2e-38) as zero on the calling thread and in the engine's
/// workers, as `torch.set_flush_denormal` does: much faster when training produces them (see
/// `kernels::fp`), at the cost of rounding those tiny values to zero. The notebook and the
/// benchmarks turn it on.
pub fn set_flush_denormal(on: bool) {
    FLUSH_DENORMAL.store(on, Ordering::Relaxed);
    crate::kernels::fp::set_flush_denormal_on_this_thread(on);
    pool().broadcast(|_| crate::kernels::fp::set_flush_denormal_on_this_thread(on));
}

/// Whether work over `len` elements should be split across the pool: at least `min` elements
/// (below that the split costs more than it saves), more than one thread, and not from inside a
/// worker, whose pool is busy already (a data-parallel shard, say).
pub(crate) fn worth_splitting(len: usize, min: usize) -> bool {
    len >= min && rayon::current_thread_index().is_none() && num_threads() > 1
}

/// Runs `f(i, block)` for each `size`-element block of `out` (the last may be shorter), across the
/// engine's pool when `parallel`. Each block is computed the same way either way.
pub(crate) fn for_each_block(
    out: &mut [f32],
    size: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    use rayon::prelude::*;
    if size == 0 {
        return;
    }
    if parallel {
        pool().install(|| {
            out.par_chunks_mut(size)
                .enumerate()
                .for_each(|(i, block)| f(i, block))
        });
    } else {
        out.chunks_mut(size)
            .enumerate()
            .for_each(|(i, block)| f(i, block));
    }
}
