//! Atomic file writes: a reader (or a crash) sees the old file or the new one, never a torn mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: into a temporary file in the same directory, flushed and
/// fsynced, then renamed over `path`, then the directory fsynced so the rename itself is durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |what: &str, e: std::io::Error| {
        Error::new("write", format!("{what} {}: {e}", path.display()))
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::new("write", format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f =
            File::create(&tmp).map_err(|e| err("cannot create a temporary file beside", e))?;
        f.write_all(bytes).map_err(|e| err("cannot write", e))?;
        f.sync_all().map_err(|e| err("cannot flush", e))?;
        fs::rename(&tmp, path).map_err(|e| err("cannot replace", e))?;
        if let Ok(d) = File::open(&dir) {
            // Best effort: some file systems do not support syncing a directory.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
