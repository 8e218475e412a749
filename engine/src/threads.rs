//! The engine's one rayon pool. Its size defaults to the number of cores, can be set with the
//! `GRADBOOK_THREADS` environment variable, and changed at run time with [`set_num_threads`].
//! rayon's workers sleep when idle; inside [`run`] (the training loop's steps) one worker is kept
//! awake for at most `GRADBOOK_SPIN_US` (1 ms) between parallel regions, and goes to sleep at once
//! when another program wants its core, so a busy machine slows the engine down gracefully instead
//! of stalling it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

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
/// (below that the split costs more than it saves), more than one thread, and [`may_split`].
pub(crate) fn worth_splitting(len: usize, min: usize) -> bool {
    len >= min && num_threads() > 1 && may_split()
}

// How the engine's ops split work, and why [`run`] exists.
//
// An op called from an ordinary thread (the notebook's, say) hands its pieces to the pool with
// `install` and blocks until they are done: every parallel region waits for sleeping workers to
// wake up. On the 2-vCPU virtual machines this project is measured on, waking an idle vCPU takes
// 50-150 µs, as long as a whole GEMM of a small model; two threads then ran the GAN step 15%
// slower than one. Inside [`run`] the calling code itself runs on a worker, so a region is a
// rayon `join`: the caller computes its half at once and takes back the other half if no worker
// has come for it (never slower than one thread), and [`keep_warm`] keeps one other worker
// awake between regions for a moment, so that it does come.

thread_local! {
    /// This thread is running the closure of a [`run`] (and so may split ops itself).
    static IN_RUN: Cell<bool> = const { Cell::new(false) };
    /// This thread is inside a parallel region (computing one of its pieces, or waiting for them):
    /// the ops it calls stay on it.
    static IN_REGION: Cell<bool> = const { Cell::new(false) };
    /// This worker is spinning in [`spin`], counted in [`AVAILABLE`].
    static SPINNING: Cell<bool> = const { Cell::new(false) };
}

/// Sets a thread-local flag for the guard's lifetime and restores it after, panics included.
struct Flag {
    key: &'static std::thread::LocalKey<Cell<bool>>,
    was: bool,
}

impl Flag {
    fn set(key: &'static std::thread::LocalKey<Cell<bool>>, value: bool) -> Flag {
        Flag {
            key,
            was: key.with(|f| f.replace(value)),
        }
    }
}

impl Drop for Flag {
    fn drop(&mut self) {
        self.key.with(|f| f.set(self.was));
    }
}

/// Whether an op on this thread may split its work across the pool: from outside the pool, or
/// from the closure of a [`run`]; not from a piece of a parallel region (a data-parallel shard,
/// say), whose pool is busy already.
pub(crate) fn may_split() -> bool {
    !IN_REGION.with(Cell::get)
        && (rayon::current_thread_index().is_none() || IN_RUN.with(Cell::get))
}

/// Runs `f` on one of the pool's workers, so that each parallel region of the ops it calls is a
/// rayon `join` that the calling code takes part in: it computes its share at once and takes the
/// rest back if no worker has come for it, instead of blocking until sleeping workers wake up
/// (50-150 µs on a 2-vCPU virtual machine, as long as a small model's GEMM). The training loop
/// (`train::step`, `fit`) and the benchmarks' steps run this way.
///
/// Handing `f` to a worker and waking the caller afterwards costs tens of microseconds, more
/// than a tiny model's whole step, so while the previous `f` took under 500 µs (and with one
/// thread, or while this thread has gradient recording off, a forced instruction set, layer
/// hooks or a shard context) `f` runs on the calling thread instead. Results are the same either
/// way: ops make the same splitting decisions, each element is computed the same way whoever
/// computes it, and random draws come from the caller's default generator (`manual_seed`)
/// wherever `f` runs.
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    // State of this thread that the ops read (gradient recording off, a forced instruction set,
    // layer hooks, a shard's generator) stays here: so does `f` while any is set.
    let context = !crate::autodiff::is_grad_enabled()
        || crate::kernels::gemm::isa_forced()
        || crate::nn::summary::hooks_active()
        || crate::nn::shard_context_active();
    if context
        || num_threads() < 2
        || LAST_RUN_US.load(Ordering::Relaxed) < RUN_INLINE_BELOW.as_micros() as u64
    {
        timed(f)
    } else {
        // The caller's default random generator goes with the closure and comes back advanced,
        // as if the closure had run here (it is per thread).
        use crate::tensor::rng::swap_default;
        let rng = swap_default(None);
        let (done, rng) = pool().install(|| {
            if SPINNING.with(|s| s.replace(false)) {
                // Picked up by a spinning worker, which is now busy with this.
                AVAILABLE.fetch_sub(1, Ordering::AcqRel);
            }
            let own = swap_default(rng);
            let _run = Flag::set(&IN_RUN, true);
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| timed(f)));
            (done, swap_default(own))
        });
        swap_default(rng);
        done.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// `f()`, its duration kept in [`LAST_RUN_US`].
fn timed<R>(f: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let out = f();
    LAST_RUN_US.store(t.elapsed().as_micros() as u64, Ordering::Relaxed);
    out
}

/// [`run`] hands its closure to the pool only when the previous one took at least this long.
const RUN_INLINE_BELOW: Duration = Duration::from_micros(500);
/// How long the last closure given to [`run`] took, in microseconds (none yet: the pool).
static LAST_RUN_US: AtomicU64 = AtomicU64::new(u64::MAX);

/// Runs the parallel region `f` (a rayon parallel iterator, typically) on the engine's pool; the
/// ops its pieces call do not split again.
pub(crate) fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if IN_RUN.with(Cell::get) {
        keep_warm();
    }
    pool().install(|| {
        let _region = Flag::set(&IN_REGION, true);
        f()
    })
}

/// Workers spinning in [`spin`] and free to take work.
static AVAILABLE: AtomicUsize = AtomicUsize::new(0);

/// How long [`keep_warm`] keeps a worker awake after its last piece of work:
/// `GRADBOOK_SPIN_US` microseconds (default 1000; 0 turns it off), like OpenMP's spin-wait
/// before a thread sleeps (`KMP_BLOCKTIME`, `GOMP_SPINCOUNT`).
fn spin_for() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        let us = std::env::var("GRADBOOK_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1000);
        Duration::from_micros(us)
    })
}

/// Makes sure one worker is awake, ready to take part in the next parallel region (see
/// [`spin`]).
fn keep_warm() {
    // The cheap checks first: this runs at the start of every parallel region.
    if AVAILABLE.load(Ordering::Acquire) > 0 || spin_for().is_zero() || num_threads() < 2 {
        return;
    }
    AVAILABLE.fetch_add(1, Ordering::AcqRel);
    pool().spawn(spin);
}

/// A worker kept awake until it has had no work for [`spin_for`]: it runs pending pieces as they
/// come (`rayon::yield_now`) and otherwise gives its core away (`std::thread::yield_now`). When
/// that yield takes longer than 100 µs another program wanted the core, and the worker goes to
/// sleep at once: on a busy machine nothing spins.
fn spin() {
    // The caller of `run` may pick this job up itself while it waits for a piece: no spinning
    // there.
    if IN_RUN.with(Cell::get) {
        AVAILABLE.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let _spinning = Flag::set(&SPINNING, true);
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < spin_for() {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            if !SPINNING.with(Cell::get) {
                // What ran was a whole `run` closure, which took this worker's availability
                // (and started another spinner if it needed one).
                return;
            }
            idle_since = Instant::now();
            continue;
        }
        let t = Instant::now();
        std::thread::yield_now();
        if t.elapsed() > Duration::from_micros(100) {
            break;
        }
    }
    AVAILABLE.fetch_sub(1, Ordering::AcqRel);
}

/// Runs `f(i, block)` for each `size`-element block of `out` (the last may be shorter), across the
/// engine's pool when `parallel`. Each block is computed the same way either way.
pub(crate) fn for_each_block<T: Send>(
    out: &mut [T],
    size: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    use rayon::prelude::*;
    if size == 0 {
        return;
    }
    if parallel {
        install(|| {
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
