//! The gradbook notebook: lesson files, the script bindings, the renderers, sessions, and the
//! interactive and non-interactive front ends. The `gradbook` binary is a thin `main` over this.

pub mod lesson;
pub mod render;
pub mod repl;
pub mod runner;
pub mod script;
pub mod session;
pub mod ui;

/// The process's allocator (for the binary and this crate's tests). Training allocates and frees
/// the same large buffers every step: it keeps them resident for reuse, shared by the engine's
/// threads (see `engine::kernels::alloc` for why). The notebook returns what it cached to the
/// system whenever it waits for the learner ([`release_cached_memory`]).
#[global_allocator]
pub static ALLOC: engine::Allocator = engine::Allocator::new();

/// Unmaps the large blocks the allocator keeps for reuse: called while nothing runs (at a prompt,
/// between lessons), so an idle notebook does not hold the last training run's buffers.
pub fn release_cached_memory() {
    ALLOC.trim();
}
