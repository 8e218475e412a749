//! `gradbook`: the notebook. With no arguments it lists the lessons and opens the one chosen.
//!
//! ```text
//! gradbook                      pick a lesson
//! gradbook tutorials/FILE       open one lesson
//! gradbook --no-pause FILE      run a lesson without stopping (add --export FILE.html)
//! gradbook --run-all [DIR]      run every lesson non-interactively; fails if any check fails
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use notebook::render::term::Style;
use notebook::session::Session;
use notebook::{lesson, repl, runner, script};

const USAGE: &str = "usage: gradbook [LESSON.rhai] | --no-pause LESSON.rhai [--export FILE.html] | --run-all [DIR] [--max-operations N]";

/// Where the lessons are: `$GRADBOOK_TUTORIALS`, `./tutorials`, or the source tree's.
fn tutorials_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GRADBOOK_TUTORIALS") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("tutorials");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tutorials")
}

fn lesson_title(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let parsed = lesson::parse(&text, &path.display().to_string());
    parsed
        .ok()
        .and_then(|l| {
            l.cells.iter().find_map(|c| {
                c.source
                    .lines()
                    .find(|x| x.starts_with('#'))
                    .map(|h| h.trim_start_matches('#').trim().to_string())
            })
        })
        .unwrap_or_default()
}

fn open(path: &Path, style: Style) -> ExitCode {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gradbook: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    match lesson::parse(&text, &file) {
        Ok(l) => match repl::run(
            Session::new(l, &file, true, style.color, style),
            style.color,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gradbook: terminal error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("gradbook: {e}");
            ExitCode::from(2)
        }
    }
}

fn pick(style: Style) -> ExitCode {
    let lessons = runner::lessons_in(&tutorials_dir());
    if lessons.is_empty() {
        eprintln!(
            "gradbook: no lessons found in {}",
            tutorials_dir().display()
        );
        return ExitCode::from(2);
    }
    println!("gradbook — deep learning, one runnable step at a time.\n\nLessons:");
    for (i, p) in lessons.iter().enumerate() {
        println!(
            "  {:>2}. {:<28} {}",
            i + 1,
            p.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
            lesson_title(p)
        );
    }
    let mut rl = match rustyline::DefaultEditor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gradbook: terminal error: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        match rl.readline("\nOpen which lesson? (number, or q to quit) ") {
            Ok(a) if a.trim().eq_ignore_ascii_case("q") => return ExitCode::SUCCESS,
            Ok(a) => match a.trim().parse::<usize>() {
                Ok(k) if (1..=lessons.len()).contains(&k) => return open(&lessons[k - 1], style),
                _ => println!("type a number from 1 to {}", lessons.len()),
            },
            Err(_) => return ExitCode::SUCCESS,
        }
    }
}

fn main() -> ExitCode {
    // Ctrl-C while a cell runs sets a flag that the script engine and training loops check; at the
    // prompt the line editor handles it. If the handler cannot be installed, Ctrl-C simply ends
    // the program as usual.
    let _ = ctrlc::set_handler(|| script::INTERRUPT.store(true, Ordering::Relaxed));
    // Denormals slow training down several times and matter to no lesson (see engine::kernels::fp).
    engine::threads::set_flush_denormal(true);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let style = Style::detect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let max_ops = match value_of("--max-operations").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("gradbook: --max-operations needs a whole number\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.first().map(String::as_str) {
        None => pick(style),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("--version") => {
            println!("gradbook {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--run-all") => {
            let dir = args
                .get(1)
                .filter(|a| !a.starts_with("--"))
                .map_or_else(tutorials_dir, PathBuf::from);
            let files = runner::lessons_in(&dir);
            if files.is_empty() {
                eprintln!("gradbook: no lessons in {}", dir.display());
                return ExitCode::from(2);
            }
            if runner::run_all(&files, style, max_ops) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("--no-pause") => {
            let Some(file) = args.get(1) else {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            };
            let export = value_of("--export").map(PathBuf::from);
            let o = runner::run_file(Path::new(file), style, max_ops, export.as_deref());
            println!(
                "\n{}: {} cells, {} checks ({} failed), {:.1} s",
                o.file,
                o.cells,
                o.checks_passed + o.checks_failed,
                o.checks_failed,
                o.seconds
            );
            for e in &o.errors {
                println!("error: {e}");
            }
            if o.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(flag) if flag.starts_with("--") => {
            eprintln!("gradbook: unknown option {flag}\n{USAGE}");
            ExitCode::from(2)
        }
        Some(file) => open(Path::new(file), style),
    }
}
