//! Files: data sets (CSV, IDX), checkpoints (safetensors), and atomic writes.

pub mod atomic;
pub mod checkpoint;
pub mod csv;
pub mod idx;

use std::path::Path;

use crate::error::{Error, Result};

/// Reads a whole file, decompressing it if its name ends in `.gz`, with errors naming the path.
pub fn read_maybe_gz(op: &'static str, path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(op, format!("cannot read {}: {e}", path.display())))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
            .map_err(|e| {
                Error::new(
                    op,
                    format!("{} is not a valid gzip file: {e}", path.display()),
                )
            })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}
