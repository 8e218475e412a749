//! The interactive notebook: a thin loop around rustyline. Enter runs the next cell; anything else
//! typed runs as code in the lesson's scope; `:commands` move around, save and export.

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::lesson::CellKind;
use crate::script::help;
use crate::session::Session;
use crate::ui;

/// The notebook's commands, each with one line of help.
pub const COMMANDS: [(&str, &str); 11] = [
    (
        ":next",
        "run the next cell (same as Enter on an empty line)",
    ),
    (":prev", "step back one cell (Enter then runs it again)"),
    (":run N", "run cell N"),
    (":list", "list the cells, marking the next one"),
    (":vars", "show the variables in scope"),
    (
        ":restart",
        "forget all variables and go back to the first cell",
    ),
    (
        ":save FILE",
        "save the lesson with your own code in it, as a lesson file",
    ),
    (
        ":export FILE.html",
        "write the session (prose, code, outputs, pictures) as one HTML page",
    ),
    (":help", "this list; help(\"name\") documents a function"),
    (":quit", "leave the notebook (also Ctrl-D)"),
    ("Ctrl-C", "stop a running cell; your variables are kept"),
];

/// Completion, hints, highlighting and the multi-line validator.
pub struct NotebookHelper {
    pub names: Vec<String>,
    pub color: bool,
}

impl Completer for NotebookHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let mut seen = std::collections::BTreeSet::new();
        let commands = COMMANDS
            .iter()
            .map(|(c, _)| c.split(' ').next().unwrap_or(c).to_string());
        let out = self
            .names
            .iter()
            .cloned()
            .chain(commands)
            .filter(|n| n.starts_with(word) && seen.insert(n.clone()))
            .map(|n| Pair {
                display: n.clone(),
                replacement: n,
            })
            .collect();
        Ok((start, out))
    }
}

impl Hinter for NotebookHelper {
    type Hint = String;
    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<String> {
        // After `name(`, show the function's signature.
        let before = line[..pos].strip_suffix('(')?;
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        help::find(&before[start..]).map(|e| format!("  {}", e.signature))
    }
}

impl Highlighter for NotebookHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.color && !line.starts_with(':') {
            Cow::Owned(ui::highlight(line, true))
        } else {
            Cow::Borrowed(line)
        }
    }
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(format!("\x1b[90m{hint}\x1b[0m"))
        } else {
            Cow::Borrowed(hint)
        }
    }
    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

impl Validator for NotebookHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if balanced(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for NotebookHelper {}

/// Whether brackets, braces, parentheses and strings are all closed (so Enter runs the input
/// rather than starting another line).
pub fn balanced(code: &str) -> bool {
    let mut depth: i64 = 0;
    let (mut in_str, mut escaped) = (false, false);
    for line in code.lines() {
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_str {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_str = true,
                '/' if chars.peek() == Some(&'/') => break,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
        }
    }
    depth <= 0 && !in_str
}

fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    std::fs::create_dir_all(base.join("gradbook")).ok()?;
    Some(base.join("gradbook/history.txt"))
}

fn run_next(s: &mut Session, color: bool) {
    let n = s.lesson.cells.len();
    if s.next >= n {
        println!(
            "(end of the lesson: :restart to begin again, :quit to leave, or keep typing code)"
        );
        return;
    }
    let i = s.next;
    run_index(s, i, color);
}

fn run_index(s: &mut Session, i: usize, color: bool) {
    let n = s.lesson.cells.len();
    let cell = s.lesson.cells[i].clone();
    println!("{}", ui::cell_header(i, n, &cell, color));
    println!("{}", ui::show_cell(&cell, color));
    if cell.kind == CellKind::Code {
        println!();
    }
    if let Some(r) = s.run_cell(i) {
        print!("{}", ui::show_result(&r, color));
    }
}

fn command(s: &mut Session, line: &str, color: bool) -> bool {
    let mut parts = line.splitn(2, char::is_whitespace);
    let (cmd, arg) = (
        parts.next().unwrap_or(""),
        parts.next().map(str::trim).unwrap_or(""),
    );
    match cmd {
        ":next" | ":n" => run_next(s, color),
        ":prev" | ":p" => {
            s.next = s.next.saturating_sub(2).min(s.lesson.cells.len());
            if let Some(c) = s.lesson.cells.get(s.next) {
                println!(
                    "{}",
                    ui::cell_header(s.next, s.lesson.cells.len(), c, color)
                );
                println!("{}", ui::show_cell(c, color));
                println!("(Enter runs this cell)");
            }
        }
        ":run" | ":r" => match arg.parse::<usize>() {
            Ok(k) if k >= 1 && k <= s.lesson.cells.len() => run_index(s, k - 1, color),
            _ => println!("usage: :run N, with N from 1 to {}", s.lesson.cells.len()),
        },
        ":list" | ":l" => {
            for (i, c) in s.lesson.cells.iter().enumerate() {
                let mark = if i == s.next { "→" } else { " " };
                let kind = if c.kind == CellKind::Code {
                    "code "
                } else {
                    "prose"
                };
                let first = c.title.clone().unwrap_or_else(|| {
                    c.source
                        .lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(60)
                        .collect()
                });
                println!("{mark} {:>3}  {kind}  {first}", i + 1);
            }
        }
        ":vars" | ":v" => {
            let vars = s.vars();
            if vars.is_empty() {
                println!("(no variables yet)");
            }
            for (name, ty, summary) in vars {
                println!("  {name:<16} {ty:<12} {summary}");
            }
        }
        ":restart" => {
            s.restart();
            println!("(restarted: variables cleared, back at cell 1)");
        }
        ":save" | ":export" if arg.is_empty() => println!("usage: {cmd} FILE"),
        ":save" => save(s, arg, false),
        ":export" => save(s, arg, true),
        ":help" | ":h" | ":?" => {
            for (c, h) in COMMANDS {
                println!("  {c:<20} {h}");
            }
            println!("  {:<20} anything else runs as Rhai code in the lesson's scope; help() lists functions", "(code)");
        }
        ":quit" | ":q" | ":exit" => return false,
        other => println!("unknown command {other}; :help lists them"),
    }
    true
}

fn save(s: &Session, path: &str, html: bool) {
    let target = match s.host.borrow().writable(path) {
        Ok(p) => p,
        Err(e) => return println!("error: {e}"),
    };
    let text = if html {
        s.to_html()
    } else {
        s.to_lesson_text()
    };
    match engine::io::atomic::write_atomic(&target, text.as_bytes()) {
        Ok(()) => println!("wrote {}", target.display()),
        Err(e) => println!("error: {e}"),
    }
}

/// Runs the notebook on `s` until the learner quits.
pub fn run(mut s: Session, color: bool) -> rustyline::Result<()> {
    let mut rl: Editor<NotebookHelper, DefaultHistory> = Editor::new()?;
    rl.set_helper(Some(NotebookHelper {
        names: s.completions(),
        color,
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let n = s.lesson.cells.len();
    println!("Lesson {} — {n} cells. Enter runs the next cell; type code to try things; :help for commands.\n", s.lesson.name);
    if let Err(e) = s.check_syntax() {
        println!("warning: {e}");
    }
    loop {
        let prompt = if s.next < n {
            format!("[{}/{n}] › ", s.next + 1)
        } else {
            format!("[end/{n}] › ")
        };
        crate::release_cached_memory();
        match rl.readline(&prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if !trimmed.is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                    if let Some(h) = &history {
                        // Saved at once, so history survives a crash of the cell about to run.
                        let _ = rl.save_history(h);
                    }
                }
                if trimmed.is_empty() {
                    run_next(&mut s, color);
                } else if trimmed.starts_with(':') {
                    if !command(&mut s, trimmed, color) {
                        break;
                    }
                } else {
                    let r = s.run_user(&line);
                    print!("{}", ui::show_result(&r, color));
                }
                if let Some(h) = rl.helper_mut() {
                    h.names = s.completions();
                }
            }
            Err(ReadlineError::Interrupted) => {
                println!("(Ctrl-C: nothing is running; :quit or Ctrl-D to leave)")
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
