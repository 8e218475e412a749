//! IDX files, the MNIST format (big-endian): images `u32 magic 0x803, count, rows, cols` then bytes;
//! labels `u32 magic 0x801, count` then bytes. Optionally gzipped.

use std::path::Path;

use crate::error::{bail, Result};
use crate::tensor::Tensor;

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses IDX image bytes into `[count, rows, cols]` pixel values 0..255.
pub fn parse_images(b: &[u8], source: &str) -> Result<Tensor> {
    if b.len() < 16 || be_u32(b, 0) != 0x803 {
        bail!(
            "load_idx_images",
            "{source} is not an IDX image file (expected magic 0x00000803 and a 16-byte header)"
        );
    }
    let (n, r, c) = (
        be_u32(b, 4) as usize,
        be_u32(b, 8) as usize,
        be_u32(b, 12) as usize,
    );
    let need = n
        .checked_mul(r)
        .and_then(|v| v.checked_mul(c))
        .and_then(|v| v.checked_add(16));
    if need != Some(b.len()) {
        bail!(
            "load_idx_images",
            "{source} declares {n} images of {r}x{c} but holds {} bytes of pixels",
            b.len() - 16
        );
    }
    Tensor::from_vec(b[16..].iter().map(|&p| p as f32).collect(), [n, r, c])
}

/// Parses IDX label bytes into `[count]`.
pub fn parse_labels(b: &[u8], source: &str) -> Result<Tensor> {
    if b.len() < 8 || be_u32(b, 0) != 0x801 {
        bail!(
            "load_idx_labels",
            "{source} is not an IDX label file (expected magic 0x00000801 and an 8-byte header)"
        );
    }
    let n = be_u32(b, 4) as usize;
    if b.len() - 8 != n {
        bail!(
            "load_idx_labels",
            "{source} declares {n} labels but holds {}",
            b.len() - 8
        );
    }
    Tensor::from_vec(b[8..].iter().map(|&p| p as f32).collect(), [n])
}

/// Reads an IDX image file (optionally `.gz`): `[count, rows, cols]`, values 0..255.
pub fn load_idx_images(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    parse_images(
        &super::read_maybe_gz("load_idx_images", path)?,
        &path.display().to_string(),
    )
}

/// Reads an IDX label file (optionally `.gz`).
pub fn load_idx_labels(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    parse_labels(
        &super::read_maybe_gz("load_idx_labels", path)?,
        &path.display().to_string(),
    )
}
