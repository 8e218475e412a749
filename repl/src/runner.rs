//! Non-interactive runs: `gradbook --no-pause FILE` and `gradbook --run-all`. Every cell runs in
//! order with its output printed; the run fails if a cell fails or a check does not hold.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::lesson;
use crate::render::term::Style;
use crate::session::Session;
use crate::ui;

/// How one lesson went.
pub struct Outcome {
    pub file: String,
    pub seconds: f64,
    pub cells: usize,
    pub checks_passed: usize,
    pub checks_failed: usize,
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.checks_failed == 0 && self.errors.is_empty()
    }
}

/// Runs every cell of the lesson at `path`, printing as it goes; `export` writes the HTML page.
pub fn run_file(path: &Path, style: Style, max_operations: u64, export: Option<&Path>) -> Outcome {
    let file = path.display().to_string();
    let started = Instant::now();
    let fail = |e: String| Outcome {
        file: file.clone(),
        seconds: 0.0,
        cells: 0,
        checks_passed: 0,
        checks_failed: 0,
        errors: vec![e],
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {file}: {e}")),
    };
    let lesson = match lesson::parse(&text, &file) {
        Ok(l) => l,
        Err(e) => return fail(e.to_string()),
    };
    let mut s = Session::new(lesson, &file, true, false, style);
    s.max_operations = max_operations;
    if let Err(e) = s.check_syntax() {
        return fail(e);
    }
    let n = s.lesson.cells.len();
    let mut errors = Vec::new();
    for i in 0..n {
        let cell = s.lesson.cells[i].clone();
        println!("{}", ui::cell_header(i, n, &cell, style.color));
        println!("{}", ui::show_cell(&cell, style.color));
        if let Some(r) = s.run_cell(i) {
            print!("{}", ui::show_result(&r, style.color));
            if let Some(e) = r.error {
                errors.push(e);
                break;
            }
        }
    }
    if let Some(out) = export {
        if let Err(e) = engine::io::atomic::write_atomic(out, s.to_html().as_bytes()) {
            errors.push(e.to_string());
        }
    }
    let h = s.host.borrow();
    Outcome {
        file,
        seconds: started.elapsed().as_secs_f64(),
        cells: n,
        checks_passed: h.checks_passed,
        checks_failed: h.checks_failed,
        errors,
    }
}

/// The lesson files in `dir`, in name order.
pub fn lessons_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    files.sort();
    files
}

/// Runs every lesson and prints a summary table; returns whether all passed.
pub fn run_all(files: &[PathBuf], style: Style, max_operations: u64) -> bool {
    let outcomes: Vec<Outcome> = files
        .iter()
        .map(|f| {
            let outcome = run_file(f, style, max_operations, None);
            crate::release_cached_memory();
            outcome
        })
        .collect();
    println!(
        "\n{:<40} {:>8} {:>7} {:>7}  result",
        "lesson", "seconds", "checks", "failed"
    );
    for o in &outcomes {
        let name = Path::new(&o.file)
            .file_name()
            .map_or(o.file.clone(), |n| n.to_string_lossy().into_owned());
        println!(
            "{name:<40} {:>8.1} {:>7} {:>7}  {}",
            o.seconds,
            o.checks_passed + o.checks_failed,
            o.checks_failed,
            if o.ok() { "ok" } else { "FAILED" }
        );
        for e in &o.errors {
            println!("    {e}");
        }
    }
    let passed = outcomes.iter().filter(|o| o.ok()).count();
    println!("{passed} passed, {} failed", outcomes.len() - passed);
    passed == outcomes.len()
}
