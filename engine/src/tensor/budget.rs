//! A cap on the size of any one tensor, so that a shape typed by mistake (`zeros([100000, 100000])`)
//! is refused with the size it would need instead of aborting the process when the allocation
//! fails. The default is half of the machine's physical memory; `set_memory_cap` changes it.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{bail, Result};

/// Bytes; 0 until first used (then the default is computed).
static CAP: AtomicUsize = AtomicUsize::new(0);

fn default_cap() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(8 << 30, |kb| kb * 1024);
    total / 2
}

/// The largest tensor, in bytes, that ops will create.
pub fn memory_cap() -> usize {
    match CAP.load(Ordering::Relaxed) {
        0 => {
            let c = default_cap();
            CAP.store(c, Ordering::Relaxed);
            c
        }
        c => c,
    }
}

/// Sets the largest tensor, in bytes, that ops will create.
pub fn set_memory_cap(bytes: usize) {
    CAP.store(bytes.max(1), Ordering::Relaxed);
}

/// Bytes as a person reads them.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Refuses a result of `dims` (f32 elements) larger than the cap, naming the op and the size.
pub fn check(op: &'static str, dims: &[usize]) -> Result<()> {
    let elements = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let bytes = elements.and_then(|n| n.checked_mul(4));
    let cap = memory_cap();
    match bytes {
        Some(b) if b <= cap => Ok(()),
        _ => {
            let need = dims.iter().map(|&d| d as f64).product::<f64>() * 4.0;
            bail!(op, "a result of shape {dims:?} would need {}, more than the memory cap of {} (engine::tensor::budget::set_memory_cap changes it)", human_bytes(need), human_bytes(cap as f64))
        }
    }
}
