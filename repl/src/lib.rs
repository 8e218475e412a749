//! The gradbook notebook: lesson files, the script bindings, the renderers, sessions, and the
//! interactive and non-interactive front ends. The `gradbook` binary is a thin `main` over this.

pub mod lesson;
pub mod render;
pub mod repl;
pub mod runner;
pub mod script;
pub mod session;
pub mod ui;
