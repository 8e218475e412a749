//! A training loop must not grow memory: backward frees the graph it walks. This test binary counts
//! live heap bytes with its own global allocator and trains a small MLP for 1,000 steps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use engine::{Rng, Tensor};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to the system allocator and only counts bytes on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn sgd(params: &[&Tensor], lr: f32) {
    for p in params {
        let g = p.grad().expect("every parameter gets a gradient").data();
        p.update(|v| v.iter_mut().zip(g.iter()).for_each(|(w, g)| *w -= lr * g));
        p.zero_grad();
    }
}

#[test]
fn a_thousand_training_steps_do_not_grow_memory() {
    // Start the engine's worker threads first: their one-time allocations are not a leak.
    engine::threads::pool().install(|| ());
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut rng = Rng::seed(3);
    let x = Tensor::randn_with([32, 4], 0.0, 1.0, &mut rng);
    let y = x.sum(&[1], true).unwrap().tanh();
    let w1 = Tensor::randn_with([4, 16], 0.0, 0.5, &mut rng).requires_grad();
    let b1 = Tensor::zeros([16]).requires_grad();
    let w2 = Tensor::randn_with([16, 1], 0.0, 0.5, &mut rng).requires_grad();
    let b2 = Tensor::zeros([1]).requires_grad();
    let step = || -> f32 {
        let h = x.matmul(&w1).unwrap().add(&b1).unwrap().relu();
        let out = h.matmul(&w2).unwrap().add(&b2).unwrap();
        let loss = out.sub(&y).unwrap().square().mean_all();
        loss.backward().unwrap();
        sgd(&[&w1, &b1, &w2, &b2], 0.05);
        loss.item().unwrap()
    };
    let first = step();
    for _ in 0..9 {
        step();
    }
    let after_10 = LIVE.load(Ordering::Relaxed);
    let mut last = 0.0;
    for _ in 0..990 {
        last = step();
    }
    let after_1000 = LIVE.load(Ordering::Relaxed);
    assert!(
        last < first,
        "the loop should train: loss {first} -> {last}"
    );
    assert!(
        after_1000 - after_10 <= 1024,
        "live heap grew by {} bytes over 990 steps ({after_10} -> {after_1000})",
        after_1000 - after_10
    );
}
