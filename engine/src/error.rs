//! The engine's one error type.
//!
//! Every message names the operation and the shapes involved, and is written for the person who made
//! the mistake: `matmul: cannot multiply [32, 784] by [10, 256]: inner dimensions 784 and 10 differ`.

use std::fmt;

/// What went wrong, and in which op. `Display` gives the full sentence a user sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The operation that refused its input, e.g. `"matmul"`.
    pub op: &'static str,
    /// What was wrong, in words, with the shapes or values involved.
    pub message: String,
}

impl Error {
    /// An error raised by `op` with the given explanation.
    pub fn new(op: &'static str, message: impl Into<String>) -> Error {
        Error {
            op,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.message)
    }
}

impl std::error::Error for Error {}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns early with an [`Error`] built from `op` and a `format!` message.
macro_rules! bail {
    ($op:expr, $($arg:tt)*) => {
        return Err($crate::error::Error::new($op, format!($($arg)*)))
    };
}
pub(crate) use bail;
