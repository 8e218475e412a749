//! The global allocator the gradbook binary, the benches and the comparison use: mimalloc for small
//! blocks, and a cache of page-mapped blocks in size classes for large ones (tensor buffers).
//!
//! ```
//! #[global_allocator]
//! static ALLOC: engine::Allocator = engine::Allocator::new();
//! ```
//!
//! Why not mimalloc alone: a training step frees and re-allocates the same few dozen large
//! buffers (activations, gradients, the GEMM's packed panels) every step. On one thread mimalloc
//! reuses them well; with two threads its arenas spread the same buffers over more memory
//! (each thread starts its search for free space at its own place, and freed pages wait a second
//! before they are returned), so the character GPT's training step peaked at 170–198 MiB resident
//! on two threads against 138 MiB on one, with about 100 MiB live at the peak. glibc's malloc
//! returns large blocks to the kernel and faults them in again each step (2–17% slower). A cache
//! of whole blocks per size class, shared by all threads and handed out last-freed-first, keeps
//! the buffers a step needs resident and hot in cache, and nothing else: the GPT step peaks at
//! about 140 MiB on two threads and 127 MiB on one, at the same speed as mimalloc alone
//! (`benches/pytorch/compare.py`).
//!
//! Blocks of [`LARGE`] bytes or more (with alignment up to a page) are rounded up to a size
//! class, four classes per power of two (at most 25% rounding). A freed block goes on its class's
//! free list (the link is stored in the block's first word) unless the cache already holds
//! [`Allocator::cache_limit`] bytes, in which case it is unmapped; [`Allocator::trim`] unmaps
//! everything cached (the notebook calls it while it waits for input). All threads share one
//! mutex: it is held for a handful of instructions per large allocation, which are few (a GPT
//! training step makes about 150).

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Requests of this many bytes or more go to the block cache; smaller ones to mimalloc.
pub const LARGE: usize = 256 * 1024;

/// The page size the blocks are aligned to; larger alignments go to mimalloc.
const PAGE: usize = 4096;

/// Size classes: exponents up to 2^63, four classes per power of two.
const EXPONENTS: usize = 64;
const PER_OCTAVE: usize = 4;

/// The default bound on the bytes the cache keeps for reuse.
const DEFAULT_CACHE_LIMIT: usize = 512 << 20;

static SMALL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The size class of a large request: `(index, bytes)`, the smallest class of at least `size`.
/// With `2^e < size <= 2^(e+1)`, the classes between are `2^e + j * 2^(e-2)` for `j = 1..=4`.
fn class_of(size: usize) -> (usize, usize) {
    debug_assert!(size >= LARGE);
    let e = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
    let step = 1usize << (e - 2);
    let j = (size - (1 << e)).div_ceil(step).max(1);
    (e * PER_OCTAVE + j - 1, (1 << e) + j * step)
}

fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

/// The free lists: one head per class (0 when empty), and the bytes they hold.
struct Lists {
    head: [usize; EXPONENTS * PER_OCTAVE],
    cached: usize,
}

/// mimalloc for small blocks, a shared cache of page-mapped blocks for large ones (see the module
/// documentation).
pub struct Allocator {
    lists: Mutex<Lists>,
    limit: AtomicUsize,
    mapped: AtomicUsize,
}

/// What the large-block side of an [`Allocator`] holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeBlockStats {
    /// Mapped from the system: blocks in use plus blocks cached.
    pub mapped: usize,
    /// Freed and kept for reuse.
    pub cached: usize,
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

impl Allocator {
    /// An allocator with an empty cache, bounded at 512 MiB.
    pub const fn new() -> Allocator {
        Allocator {
            lists: Mutex::new(Lists {
                head: [0; EXPONENTS * PER_OCTAVE],
                cached: 0,
            }),
            limit: AtomicUsize::new(DEFAULT_CACHE_LIMIT),
            mapped: AtomicUsize::new(0),
        }
    }

    /// The most bytes of freed large blocks kept for reuse; beyond it freed blocks are unmapped.
    pub fn cache_limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Sets [`cache_limit`](Self::cache_limit) (0 turns the cache off). Blocks already cached
    /// stay until [`trim`](Self::trim).
    pub fn set_cache_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// The bytes mapped for large blocks and the part of them cached.
    pub fn stats(&self) -> LargeBlockStats {
        let cached = self.lock().cached;
        LargeBlockStats {
            mapped: self.mapped.load(Ordering::Relaxed),
            cached,
        }
    }

    /// Returns every cached block to the system.
    pub fn trim(&self) {
        let heads = {
            let mut lists = self.lock();
            lists.cached = 0;
            std::mem::replace(&mut lists.head, [0; EXPONENTS * PER_OCTAVE])
        };
        for (index, &head) in heads.iter().enumerate() {
            let bytes = class_bytes(index);
            let mut block = head;
            while block != 0 {
                // SAFETY: every block on a free list is a mapping of its class's size that no one
                // else references, and its first word holds the next block (written by `give`).
                let next = unsafe {
                    let next = *(block as *const usize);
                    os::unmap(block as *mut u8, bytes);
                    next
                };
                self.mapped.fetch_sub(bytes, Ordering::Relaxed);
                block = next;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lists> {
        // Nothing panics while the lock is held, so a poisoned lock still holds consistent lists.
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A block of the class of `size`: `(pointer, known to be zero)`, or null when the system
    /// refuses.
    fn take(&self, size: usize) -> (*mut u8, bool) {
        let (index, bytes) = class_of(size);
        {
            let mut lists = self.lock();
            let head = lists.head[index];
            if head != 0 {
                // SAFETY: `head` is a cached block of this class; its first word is the next link.
                lists.head[index] = unsafe { *(head as *const usize) };
                lists.cached -= bytes;
                return (head as *mut u8, false);
            }
        }
        let block = os::map(bytes);
        if !block.is_null() {
            self.mapped.fetch_add(bytes, Ordering::Relaxed);
        }
        (block, true)
    }

    /// Caches a block of the class of `size`, or unmaps it when the cache is full.
    ///
    /// # Safety
    /// `block` came from `take(size)` (for a size of the same class) and is no longer used.
    unsafe fn give(&self, block: *mut u8, size: usize) {
        let (index, bytes) = class_of(size);
        {
            let mut lists = self.lock();
            if lists.cached + bytes <= self.cache_limit() {
                // SAFETY: the block is ours again and at least a page long.
                unsafe { *(block as *mut usize) = lists.head[index] };
                lists.head[index] = block as usize;
                lists.cached += bytes;
                return;
            }
        }
        // SAFETY: a mapping of `bytes` (the class size) that nothing references.
        unsafe { os::unmap(block, bytes) };
        self.mapped.fetch_sub(bytes, Ordering::Relaxed);
    }
}

fn class_bytes(index: usize) -> usize {
    let (e, j) = (index / PER_OCTAVE, index % PER_OCTAVE + 1);
    (1 << e) + j * (1 << (e - 2))
}

// SAFETY: small requests are mimalloc's, with the same layouts. Large ones are whole mappings of
// at least the requested size, page-aligned (so any alignment up to a page holds), handed to one
// owner at a time: a block is either on exactly one free list (under the mutex) or allocated.
// `dealloc` and `realloc` receive the layout the block was allocated with, so `class_of` finds
// the same class (and so the same mapping length) as `alloc` did.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            self.take(layout.size()).0
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { SMALL.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            let (block, zero) = self.take(layout.size());
            if !block.is_null() && !zero {
                // SAFETY: the block holds at least `layout.size()` bytes.
                unsafe { ptr::write_bytes(block, 0, layout.size()) };
            }
            block
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { SMALL.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if is_large(layout) {
            // SAFETY: allocated by `alloc` with this layout (the caller's contract).
            unsafe { self.give(block, layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { SMALL.dealloc(block, layout) }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY (all branches): the caller guarantees `block` was allocated with `layout` and
        // that `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_large(layout), is_large(new_layout)) {
            (false, false) => unsafe { SMALL.realloc(block, layout, new_size) },
            (true, true) if class_of(layout.size()).0 == class_of(new_size).0 => block,
            _ => {
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

/// Whole-page mappings from the operating system, zero-filled and page-aligned.
#[cfg(unix)]
mod os {
    /// `bytes` of fresh zeroed memory, or null.
    pub fn map(bytes: usize) -> *mut u8 {
        // SAFETY: an anonymous private mapping touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    /// # Safety
    /// `p` and `bytes` are a mapping made by [`map`] that nothing references any more.
    pub unsafe fn unmap(p: *mut u8, bytes: usize) {
        // SAFETY: the caller's contract. munmap only fails on arguments `map` never produces.
        unsafe { libc::munmap(p.cast(), bytes) };
    }
}

/// Elsewhere the blocks come from the system allocator, page-aligned and zeroed.
#[cfg(not(unix))]
mod os {
    use std::alloc::{GlobalAlloc, Layout, System};

    pub fn map(bytes: usize) -> *mut u8 {
        // SAFETY: `bytes` is a nonzero multiple of the page size, a valid layout.
        unsafe { System.alloc_zeroed(Layout::from_size_align_unchecked(bytes, super::PAGE)) }
    }

    /// # Safety
    /// `p` and `bytes` come from [`map`] and nothing references the block any more.
    pub unsafe fn unmap(p: *mut u8, bytes: usize) {
        // SAFETY: the caller's contract; the same layout as `map` used.
        unsafe { System.dealloc(p, Layout::from_size_align_unchecked(bytes, super::PAGE)) }
    }
}

// Miri cannot call mmap; the allocator is exercised natively here and, as the global allocator,
// by every test of the gradbook binary and the suite's workload tests.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_requests_with_at_most_a_quarter_more() {
        let mut last = 0;
        for size in (LARGE..LARGE * 64).step_by(4093) {
            let (index, bytes) = class_of(size);
            assert!(
                bytes >= size && bytes <= size + size / 4 + PAGE,
                "{size} -> {bytes}"
            );
            assert_eq!(bytes % PAGE, 0);
            assert_eq!(class_bytes(index), bytes);
            assert!(index >= last, "classes grow with the size");
            last = index;
        }
        assert_eq!(class_of(1 << 20), (19 * PER_OCTAVE + 3, 1 << 20));
        assert_eq!(
            class_of((1 << 20) + 1),
            (20 * PER_OCTAVE, (1 << 20) + (1 << 18))
        );
    }

    #[test]
    fn large_blocks_are_reused_last_freed_first_and_zeroed_on_request() {
        let a = Allocator::new();
        let layout = Layout::from_size_align(300_000, 64).unwrap();
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null() && (p as usize).is_multiple_of(PAGE));
            assert!(std::slice::from_raw_parts(p, layout.size())
                .iter()
                .all(|&b| b == 0));
            ptr::write_bytes(p, 0xAB, layout.size());
            a.dealloc(p, layout);
            assert_eq!(a.stats().cached, class_of(300_000).1);
            // A request of the same class gets the same block back, zeroed when asked.
            let same_class = Layout::from_size_align(290_000, 8).unwrap();
            let q = a.alloc_zeroed(same_class);
            assert_eq!(q, p);
            assert!(std::slice::from_raw_parts(q, same_class.size())
                .iter()
                .all(|&b| b == 0));
            assert_eq!(a.stats().cached, 0);
            a.dealloc(q, same_class);
            a.trim();
            assert_eq!(
                a.stats(),
                LargeBlockStats {
                    mapped: 0,
                    cached: 0
                }
            );
        }
    }

    #[test]
    fn the_cache_limit_unmaps_what_does_not_fit() {
        let a = Allocator::new();
        a.set_cache_limit(LARGE * 2);
        let layout = Layout::from_size_align(LARGE, 8).unwrap();
        unsafe {
            let blocks: Vec<*mut u8> = (0..4).map(|_| a.alloc(layout)).collect();
            assert_eq!(a.stats().mapped, 4 * LARGE);
            for &b in &blocks {
                a.dealloc(b, layout);
            }
        }
        assert_eq!(
            a.stats(),
            LargeBlockStats {
                mapped: 2 * LARGE,
                cached: 2 * LARGE
            }
        );
        a.trim();
        assert_eq!(a.stats().mapped, 0);
    }

    #[test]
    fn realloc_keeps_contents_across_the_threshold_and_between_classes() {
        let a = Allocator::new();
        unsafe {
            let small = Layout::from_size_align(1000, 4).unwrap();
            let mut p = a.alloc(small);
            for i in 0..1000 {
                *p.add(i) = i as u8;
            }
            let mut layout = small;
            for new_size in [LARGE + 5, LARGE + 10, 3 * LARGE, 1500, 700] {
                p = a.realloc(p, layout, new_size);
                assert!(!p.is_null());
                layout = Layout::from_size_align(new_size, 4).unwrap();
                for i in 0..700 {
                    assert_eq!(*p.add(i), i as u8, "byte {i} after growing to {new_size}");
                }
            }
            a.dealloc(p, layout);
        }
        a.trim();
        assert_eq!(a.stats().mapped, 0);
    }

    #[test]
    fn threads_share_the_cache_without_handing_a_block_out_twice() {
        let a = Allocator::new();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let a = &a;
                s.spawn(move || {
                    for i in 0..200usize {
                        let size = LARGE + (i % 7) * 70_000;
                        let layout = Layout::from_size_align(size, 64).unwrap();
                        unsafe {
                            let p = a.alloc(layout);
                            assert!(!p.is_null() && (p as usize).is_multiple_of(64));
                            ptr::write_bytes(p, t, size);
                            std::thread::yield_now();
                            let bytes = std::slice::from_raw_parts(p, size);
                            assert!(bytes.iter().all(|&b| b == t), "another thread wrote here");
                            a.dealloc(p, layout);
                        }
                    }
                });
            }
        });
        let stats = a.stats();
        assert_eq!(stats.mapped, stats.cached, "everything freed is cached");
        a.trim();
        assert_eq!(a.stats().mapped, 0);
    }

    #[test]
    fn over_aligned_and_small_requests_go_to_mimalloc() {
        let a = Allocator::new();
        unsafe {
            for layout in [
                Layout::from_size_align(LARGE, 2 * PAGE).unwrap(),
                Layout::from_size_align(100, 8).unwrap(),
            ] {
                let p = a.alloc(layout);
                assert!(!p.is_null() && (p as usize).is_multiple_of(layout.align()));
                a.dealloc(p, layout);
            }
        }
        assert_eq!(a.stats().mapped, 0);
    }
}
