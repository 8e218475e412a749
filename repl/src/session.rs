//! A notebook session: a lesson, the script engine and its variables, where the learner is, and a
//! transcript of everything run (for `:save` and `:export`).

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope, AST};

use crate::lesson::{self, Cell, CellKind, Lesson};
use crate::render::html::{self, Block};
use crate::render::term::Style;
use crate::script::{self, nn::Layer, Host, Output, SharedHost, INTERRUPT};

/// Where a piece of code came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Cell `i` of the lesson.
    Cell(usize),
    /// Typed by the learner after cell `after` (or before any cell, `None`).
    User { code: String, after: Option<usize> },
}

/// What running some code did.
#[derive(Clone, Debug)]
pub struct Ran {
    pub source: Source,
    /// The value of the last expression, shown like a notebook shows it.
    pub value: Option<String>,
    pub outputs: Vec<Output>,
    pub error: Option<String>,
}

/// A lesson being worked through.
pub struct Session {
    pub lesson: Lesson,
    pub file: String,
    pub host: SharedHost,
    engine: Engine,
    scope: Scope<'static>,
    /// Functions defined by cells so far, kept so later cells can call them.
    functions: AST,
    /// The index of the next cell Enter runs.
    pub next: usize,
    pub transcript: Vec<Ran>,
    /// A limit on script operations per cell (0 = none), for non-interactive runs.
    pub max_operations: u64,
}

impl Session {
    /// A session on `lesson`, read from `file`. Outputs print as they happen when `live`.
    pub fn new(lesson: Lesson, file: &str, live: bool, animate: bool, style: Style) -> Session {
        let dir = Path::new(file)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let host = Rc::new(RefCell::new(Host::new(live, animate, style, &dir)));
        let engine = script::build_engine(host.clone());
        Session {
            lesson,
            file: file.to_string(),
            host,
            engine,
            scope: Scope::new(),
            functions: AST::empty(),
            next: 0,
            transcript: Vec::new(),
            max_operations: 0,
        }
    }

    /// Forgets every variable and function and goes back to the first cell.
    pub fn restart(&mut self) {
        self.scope = Scope::new();
        self.functions = AST::empty();
        self.next = 0;
        let mut h = self.host.borrow_mut();
        h.checks_failed = 0;
        h.checks_passed = 0;
    }

    /// Checks that every code cell parses; reports the first syntax error with file and line.
    pub fn check_syntax(&self) -> Result<(), String> {
        for c in self
            .lesson
            .cells
            .iter()
            .filter(|c| c.kind == CellKind::Code)
        {
            if let Err(e) = self.engine.compile(&c.source) {
                let line = e.position().line().unwrap_or(1) + c.line - 1;
                return Err(format!(
                    "{}:{line}: syntax error: {}",
                    self.file,
                    e.err_type()
                ));
            }
        }
        Ok(())
    }

    /// Runs lesson cell `i` (prose cells just count as visited) and moves past it.
    pub fn run_cell(&mut self, i: usize) -> Option<Ran> {
        let cell = self.lesson.cells.get(i)?.clone();
        self.next = i + 1;
        if cell.kind == CellKind::Markdown {
            return Some(Ran {
                source: Source::Cell(i),
                value: None,
                outputs: Vec::new(),
                error: None,
            });
        }
        Some(self.run(&cell.source, Source::Cell(i), cell.line))
    }

    /// Runs code the learner typed, in the lesson's scope.
    pub fn run_user(&mut self, code: &str) -> Ran {
        let after = self.next.checked_sub(1);
        self.run(
            code,
            Source::User {
                code: code.to_string(),
                after,
            },
            1,
        )
    }

    fn run(&mut self, code: &str, source: Source, first_line: usize) -> Ran {
        INTERRUPT.store(false, Ordering::Relaxed);
        self.host.borrow_mut().outputs.clear();
        self.engine.set_max_operations(self.max_operations);
        let where_ = |pos: Position| -> String {
            match (&source, pos.line()) {
                (Source::Cell(_), Some(l)) => format!("{}:{}", self.file, l + first_line - 1),
                (_, Some(l)) => format!("line {l}"),
                _ => String::from("here"),
            }
        };
        let result: Result<Dynamic, String> = match self.engine.compile(code) {
            Err(e) => Err(format!(
                "{}: syntax error: {}",
                where_(e.position()),
                e.err_type()
            )),
            Ok(ast) => {
                let merged = self.functions.merge(&ast);
                let (engine, scope) = (&self.engine, &mut self.scope);
                match catch_unwind(AssertUnwindSafe(|| {
                    engine.eval_ast_with_scope::<Dynamic>(scope, &merged)
                })) {
                    Ok(Ok(v)) => {
                        self.functions = self.functions.merge(&ast.clone_functions_only());
                        Ok(v)
                    }
                    Ok(Err(e)) => Err(describe_error(*e, &where_)),
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Err(format!("internal error (a bug in gradbook, please report it): {what}; your variables are kept"))
                    }
                }
            }
        };
        let outputs = std::mem::take(&mut self.host.borrow_mut().outputs);
        let ran = match result {
            Ok(v) => Ran {
                source,
                value: show_value(&v),
                outputs,
                error: None,
            },
            Err(e) => Ran {
                source,
                value: None,
                outputs,
                error: Some(e),
            },
        };
        self.transcript.push(ran.clone());
        ran
    }

    /// The variables in scope: name, type, and a one-line summary.
    pub fn vars(&self) -> Vec<(String, String, String)> {
        self.scope
            .iter()
            .map(|(name, _, v)| {
                let summary = show_value(&v)
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(60)
                    .collect();
                (
                    name.to_string(),
                    v.type_name().rsplit("::").next().unwrap_or("").to_string(),
                    summary,
                )
            })
            .collect()
    }

    /// Names that can be completed: variables, then bound functions.
    pub fn completions(&self) -> Vec<String> {
        let mut names: Vec<String> = self.scope.iter().map(|(n, _, _)| n.to_string()).collect();
        names.extend(script::help::HELP.iter().map(|e| e.name.to_string()));
        names
    }

    /// The lesson with the learner's own code inserted where it was typed, as a lesson file.
    pub fn to_lesson_text(&self) -> String {
        let mut cells: Vec<Cell> = Vec::new();
        let user_after = |i: Option<usize>| -> Vec<Cell> {
            self.transcript
                .iter()
                .filter_map(|r| match &r.source {
                    Source::User { code, after } if *after == i => Some(Cell {
                        kind: CellKind::Code,
                        title: Some("your code".into()),
                        source: code.clone(),
                        line: 0,
                    }),
                    _ => None,
                })
                .collect()
        };
        cells.extend(user_after(None));
        for (i, c) in self.lesson.cells.iter().enumerate() {
            cells.push(c.clone());
            cells.extend(user_after(Some(i)));
        }
        lesson::write(&cells)
    }

    /// The session as a self-contained HTML page.
    pub fn to_html(&self) -> String {
        let mut blocks = Vec::new();
        let mut shown_prose = vec![false; self.lesson.cells.len()];
        for r in &self.transcript {
            if let Source::Cell(i) = r.source {
                // Prose cells before this code cell that were not shown yet.
                for (j, c) in self.lesson.cells.iter().enumerate().take(i) {
                    if c.kind == CellKind::Markdown && !shown_prose[j] {
                        shown_prose[j] = true;
                        blocks.push(Block::Prose(c.source.clone()));
                    }
                }
            }
            match &r.source {
                Source::Cell(i) => {
                    let c = &self.lesson.cells[*i];
                    if c.kind == CellKind::Markdown {
                        if !shown_prose[*i] {
                            shown_prose[*i] = true;
                            blocks.push(Block::Prose(c.source.clone()));
                        }
                        continue;
                    }
                    blocks.push(Block::Code {
                        title: c.title.clone(),
                        source: c.source.clone(),
                    });
                }
                Source::User { code, .. } => blocks.push(Block::Code {
                    title: Some("your code".into()),
                    source: code.clone(),
                }),
            }
            for o in &r.outputs {
                blocks.push(match o {
                    Output::Text(t) => Block::Text(t.clone()),
                    Output::Figure(f) => Block::Figure(f.clone()),
                    Output::Check { passed, message } => Block::Check {
                        passed: *passed,
                        message: message.clone(),
                    },
                });
            }
            if let Some(v) = &r.value {
                blocks.push(Block::Text(v.clone()));
            }
            if let Some(e) = &r.error {
                blocks.push(Block::Error(e.clone()));
            }
        }
        html::page(&self.lesson.name, &blocks)
    }
}

/// An error as the learner sees it: where, then what, without Rhai's internal wrapping.
fn describe_error(e: EvalAltResult, where_: &dyn Fn(Position) -> String) -> String {
    let pos = e.position();
    let mut inner = e;
    // A failing native call is wrapped as "error in call to function ..."; show the cause.
    while let EvalAltResult::ErrorInFunctionCall(_, _, cause, _) = inner {
        inner = *cause;
    }
    let message = match inner {
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        EvalAltResult::ErrorTerminated(v, _) => format!("stopped: {v}"),
        EvalAltResult::ErrorTooManyOperations(_) => {
            "stopped: the cell ran longer than its operation limit (a loop that never ends?)"
                .to_string()
        }
        mut other => {
            other.clear_position();
            other.to_string()
        }
    };
    format!("{}: {message}", where_(pos))
}

/// How a cell's final value is shown (nothing for unit).
pub fn show_value(v: &Dynamic) -> Option<String> {
    if v.is_unit() {
        return None;
    }
    if let Some(t) = v.clone().try_cast::<engine::Tensor>() {
        return Some(t.to_string());
    }
    if let Some(l) = v.clone().try_cast::<Layer>() {
        return Some(l.0.describe());
    }
    if let Some(d) = v.clone().try_cast::<engine::data::Dataset>() {
        return Some(format!(
            "Dataset({} samples, x {}, y {})",
            d.len(),
            d.x.shape(),
            d.y.shape()
        ));
    }
    if let Some(o) = v.clone().try_cast::<script::nn::Opt>() {
        let o = o.0.borrow();
        return Some(format!("{}(lr={})", o.name(), o.lr()));
    }
    if let Some(a) = v.clone().try_cast::<rhai::Array>() {
        let items: Vec<String> = a
            .iter()
            .map(|x| show_value(x).unwrap_or_else(|| "()".into()))
            .collect();
        return Some(format!("[{}]", items.join(", ")));
    }
    if let Some(m) = v.clone().try_cast::<rhai::Map>() {
        let items: Vec<String> = m
            .iter()
            .map(|(k, x)| format!("{k}: {}", show_value(x).unwrap_or_else(|| "()".into())))
            .collect();
        return Some(format!("#{{{}}}", items.join(", ")));
    }
    Some(v.to_string())
}
