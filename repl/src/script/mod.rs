//! The engine bound to Rhai, the lessons' scripting language.
//!
//! Tensors get PyTorch's method names and the arithmetic operators; layers, optimizers, losses,
//! data sets, `fit`, checkpoints and plots are functions. Heavy work stays native: a whole `fit`
//! is one call. Every engine error becomes a Rhai error carrying the engine's message, and Rhai
//! adds the script line. Every bound function is documented in [`help`].

pub mod data;
pub mod experiment;
pub mod help;
pub mod interop;
pub mod nn;
pub mod plot;
pub mod tensor;
pub mod text;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use rhai::{Array, Dynamic, Engine, EvalAltResult, Position, FLOAT, INT};

use crate::render::term::{self, Style};
use crate::render::Figure;

/// Result of a bound function.
pub type RResult<T> = Result<T, Box<EvalAltResult>>;

/// Set by Ctrl-C; running scripts and training loops stop when they see it.
pub static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed since the current cell started.
pub fn interrupted() -> bool {
    INTERRUPT.load(Ordering::Relaxed)
}

/// Something a cell produced, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Text(String),
    Figure(Figure),
    Check { passed: bool, message: String },
}

/// What the bound functions share with the notebook: where outputs go, how they are drawn, and
/// which files scripts may touch.
pub struct Host {
    pub outputs: Vec<Output>,
    /// Print outputs as they happen (otherwise only record them).
    pub live: bool,
    /// Redraw live charts in place (an interactive terminal).
    pub animate: bool,
    pub style: Style,
    pub checks_failed: usize,
    pub checks_passed: usize,
    /// Directories scripts may read from (the lessons' folder and the current directory).
    pub read_roots: Vec<PathBuf>,
    /// The directory scripts may write under (the current directory).
    pub write_root: PathBuf,
    /// Lines taken by the animation frame on screen, which the next frame overwrites.
    frame_lines: usize,
    last_frame: Option<std::time::Instant>,
}

/// The host, shared by the closures bound into the engine.
pub type SharedHost = Rc<RefCell<Host>>;

impl Host {
    /// A host that prints as it goes when `live`, drawing with `style`, reading lessons from
    /// `lessons_dir` and the current directory.
    pub fn new(live: bool, animate: bool, style: Style, lessons_dir: &Path) -> Host {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        Host {
            outputs: Vec::new(),
            live,
            animate,
            style,
            checks_failed: 0,
            checks_passed: 0,
            read_roots: vec![canon(lessons_dir), canon(&cwd)],
            write_root: canon(&cwd),
            frame_lines: 0,
            last_frame: None,
        }
    }

    /// Records an output, printing it if live. A figure replaces the animation frame on screen.
    pub fn emit(&mut self, out: Output) {
        if self.live {
            if matches!(out, Output::Figure(_)) {
                self.clear_frame();
            }
            print!("{}", self.format(&out));
        }
        self.frame_lines = 0;
        self.outputs.push(out);
    }

    /// One frame of an animation: drawn over the previous frame in an interactive terminal (at most
    /// 30 a second), skipped otherwise, where only the final figure (shown with `emit`) appears.
    pub fn frame(&mut self, fig: &Figure) {
        if !(self.live && self.animate) {
            return;
        }
        if let Some(t) = self.last_frame {
            let gap = std::time::Duration::from_millis(33);
            if t.elapsed() < gap {
                std::thread::sleep(gap - t.elapsed());
            }
        }
        self.clear_frame();
        let text = term::render(fig, self.style);
        print!("{text}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        self.frame_lines = text.lines().count();
        self.last_frame = Some(std::time::Instant::now());
    }

    fn clear_frame(&mut self) {
        if self.frame_lines > 0 {
            print!("\x1b[{}A\x1b[J", self.frame_lines);
            self.frame_lines = 0;
        }
    }

    /// How an output looks in the terminal.
    pub fn format(&self, out: &Output) -> String {
        match out {
            Output::Text(t) => format!("{t}\n"),
            Output::Figure(f) => term::render(f, self.style),
            Output::Check {
                passed: true,
                message,
            } => {
                if self.style.color {
                    format!("\x1b[32m✔ {message}\x1b[0m\n")
                } else {
                    format!("✔ {message}\n")
                }
            }
            Output::Check {
                passed: false,
                message,
            } => {
                if self.style.color {
                    format!("\x1b[1;31m✘ CHECK FAILED: {message}\x1b[0m\n")
                } else {
                    format!("✘ CHECK FAILED: {message}\n")
                }
            }
        }
    }

    /// A path a script may read: relative paths are looked up in the lessons' folder, then the
    /// current directory; the file must lie inside one of them.
    pub fn readable(&self, path: &str) -> RResult<PathBuf> {
        let p = Path::new(path);
        let candidates: Vec<PathBuf> = if p.is_absolute() {
            vec![p.to_path_buf()]
        } else {
            self.read_roots.iter().map(|r| r.join(p)).collect()
        };
        for c in &candidates {
            if let Ok(canon) = c.canonicalize() {
                if self.read_roots.iter().any(|r| canon.starts_with(r)) {
                    return Ok(canon);
                }
                return Err(format!("reading {path} is not allowed: lessons may only read files under the lessons' folder or the current directory").into());
            }
        }
        Err(format!(
            "no file {path} (looked in {})",
            self.read_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        )
        .into())
    }

    /// A path a script may write: inside the current directory.
    pub fn writable(&self, path: &str) -> RResult<PathBuf> {
        let p = Path::new(path);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.write_root.join(p)
        };
        let parent = full
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.write_root.clone());
        let parent = parent
            .canonicalize()
            .map_err(|_| format!("cannot write {path}: its folder does not exist"))?;
        if !parent.starts_with(&self.write_root) {
            return Err(format!(
                "writing {path} is not allowed: lessons may only write under the current directory"
            )
            .into());
        }
        Ok(parent.join(
            full.file_name()
                .ok_or_else(|| format!("{path} is not a file name"))?,
        ))
    }
}

/// Turns an engine error into a script error.
pub fn err(e: engine::Error) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(e.to_string().into(), Position::NONE).into()
}

/// A script error with a message.
pub fn fail<T>(msg: impl Into<String>) -> RResult<T> {
    Err(EvalAltResult::ErrorRuntime(msg.into().into(), Position::NONE).into())
}

/// A number (integer or float) from a script value.
pub fn num(d: &Dynamic, what: &str) -> RResult<f64> {
    if let Ok(f) = d.as_float() {
        Ok(f)
    } else if let Ok(i) = d.as_int() {
        Ok(i as f64)
    } else {
        fail(format!("{what}: expected a number, got {}", d.type_name()))
    }
}

/// Non-negative integers from a script array (a shape, a list of indices).
pub fn usizes(a: &Array, what: &str) -> RResult<Vec<usize>> {
    a.iter()
        .map(|d| match d.as_int() {
            Ok(i) if i >= 0 => Ok(i as usize),
            _ => fail(format!(
                "{what}: expected non-negative whole numbers, got {d}"
            )),
        })
        .collect()
}

/// Integers (axes, possibly negative) from a script array.
pub fn ints(a: &Array, what: &str) -> RResult<Vec<isize>> {
    a.iter()
        .map(|d| {
            d.as_int()
                .map(|i| i as isize)
                .or_else(|_| fail(format!("{what}: expected whole numbers, got {d}")))
        })
        .collect()
}

/// Floats from a script array of numbers.
pub fn floats(a: &Array, what: &str) -> RResult<Vec<f64>> {
    a.iter().map(|d| num(d, what)).collect()
}

/// An option from a `#{...}` map, or a default.
pub fn opt_num(m: &rhai::Map, key: &str, default: f64) -> RResult<f64> {
    m.get(key).map_or(Ok(default), |v| num(v, key))
}

/// Builds the engine with every binding, sharing `host`.
pub fn build_engine(host: SharedHost) -> Engine {
    let mut e = Engine::new();
    e.set_max_expr_depths(256, 128);
    e.on_progress(|_| {
        if interrupted() {
            Some(Dynamic::from("interrupted by Ctrl-C"))
        } else {
            None
        }
    });
    let h = host.clone();
    e.on_print(move |s| h.borrow_mut().emit(Output::Text(s.to_string())));
    let h = host.clone();
    e.on_debug(move |s, _, pos| {
        h.borrow_mut()
            .emit(Output::Text(format!("[debug {pos}] {s}")))
    });
    tensor::register(&mut e);
    nn::register(&mut e, host.clone());
    data::register(&mut e, host.clone());
    plot::register(&mut e, host.clone());
    experiment::register(&mut e, host.clone());
    text::register(&mut e, host.clone());
    interop::register(&mut e, host.clone());
    help::register(&mut e, host.clone());
    let h = host;
    e.register_fn("check", move |ok: bool, message: &str| {
        let mut h = h.borrow_mut();
        if ok {
            h.checks_passed += 1;
        } else {
            h.checks_failed += 1;
        }
        h.emit(Output::Check {
            passed: ok,
            message: message.to_string(),
        });
    });
    e.register_fn("manual_seed", |seed: INT| engine::manual_seed(seed as u64));
    e.register_fn("set_threads", |n: INT| -> RResult<()> {
        engine::threads::set_num_threads(n.max(0) as usize).map_err(err)
    });
    e.register_fn("threads", || engine::threads::num_threads() as INT);
    let start = std::time::Instant::now();
    e.register_fn("time_ms", move || {
        start.elapsed().as_secs_f64() as FLOAT * 1000.0
    });
    e
}
