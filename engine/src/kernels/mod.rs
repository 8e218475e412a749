//! The unsafe, performance-critical code, each piece behind a safe function that checks the
//! invariants its `unsafe` block relies on. Nothing outside this module uses `unsafe`.

pub mod fp;
pub mod gemm;
pub mod prefetch;
pub mod vmath;
