//! The notebook driven through a pseudo-terminal, as a learner uses it: open a lesson, step, type
//! code (one line and several), hit an error, interrupt a runaway loop with Ctrl-C, look at the
//! variables, save, quit.

use std::process::Command;
use std::time::Duration;

use rexpect::session::spawn_command;

fn tour() -> String {
    format!("{}/../tutorials/00_tour.rhai", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_learner_session() -> Result<(), rexpect::error::Error> {
    let dir = std::env::temp_dir().join(format!("gradbook-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradbook"));
    cmd.arg(tour())
        .env("NO_COLOR", "1")
        .env("XDG_STATE_HOME", &dir)
        .current_dir(&dir);
    let mut p = spawn_command(cmd, Some(30_000))?;
    p.exp_string("13 cells. Enter runs the next cell")?;
    p.exp_string("[1/13]")?;
    p.send_line("")?;
    p.exp_string("A TOUR OF THE NOTEBOOK")?;
    p.exp_string("[2/13]")?;
    p.send_line("")?;
    p.exp_string("x has shape [2, 2]")?;

    // From here on every input waits for the prompt first, as a person would: the line editor
    // drops input typed before it is ready.
    let prompt = "[3/13]";
    // Code of one's own, in the lesson's scope.
    p.send_line("let z = x.sum(); z * 10")?;
    p.exp_string("tensor(100.0000, shape=[])")?;
    p.exp_string(prompt)?;
    // Several lines: the validator waits for the closing brace.
    p.send_line("let s = 0; for i in 0..4 {")?;
    std::thread::sleep(Duration::from_millis(200));
    p.send_line("s += i; } print(\"loop done\");")?;
    p.exp_string("loop done")?;
    p.exp_string(prompt)?;
    p.send_line("s")?;
    p.exp_string("=> 6")?;
    p.exp_string(prompt)?;

    // An error names the op, the shapes and the line, and the session goes on.
    p.send_line("x.matmul(ones([3, 3]))")?;
    p.exp_string(
        "error: line 1: matmul: cannot multiply [2, 2] by [3, 3]: inner dimensions 2 and 3 differ",
    )?;
    p.exp_string(prompt)?;

    // Ctrl-C stops a runaway loop; the variables it changed are still there.
    p.send_line("let n = 0; loop { n += 1; }")?;
    std::thread::sleep(Duration::from_millis(700));
    p.send_control('c')?;
    p.exp_string("stopped: interrupted by Ctrl-C")?;
    p.exp_string(prompt)?;
    p.send_line("n > 1000")?;
    p.exp_string("=> true")?;
    p.exp_string(prompt)?;

    p.send_line(":vars")?;
    p.exp_string("z ")?;
    p.exp_string(prompt)?;
    p.send_line(":list")?;
    p.exp_string("3  prose  Gradients")?;
    p.exp_string(prompt)?;
    p.send_line(":save saved.rhai")?;
    p.exp_string("wrote")?;
    p.exp_string(prompt)?;
    p.send_line(":quit")?;
    p.exp_eof()?;

    // The saved file is a lesson with the learner's code in place.
    let saved = std::fs::read_to_string(dir.join("saved.rhai")).unwrap();
    let lesson = notebook::lesson::parse(&saved, "saved.rhai").unwrap();
    assert!(
        lesson
            .cells
            .iter()
            .any(|c| c.title.as_deref() == Some("your code")
                && c.source == "let z = x.sum(); z * 10"),
        "{saved}"
    );
    // History was kept across runs.
    let history = std::fs::read_to_string(dir.join("gradbook/history.txt")).unwrap();
    assert!(history.contains("let z = x.sum(); z * 10"));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn the_lesson_picker_opens_the_chosen_lesson() -> Result<(), rexpect::error::Error> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradbook"));
    let dir = std::env::temp_dir().join(format!("gradbook-pick-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    cmd.env("NO_COLOR", "1").env("XDG_STATE_HOME", &dir).env(
        "GRADBOOK_TUTORIALS",
        format!("{}/../tutorials", env!("CARGO_MANIFEST_DIR")),
    );
    let mut p = spawn_command(cmd, Some(30_000))?;
    p.exp_string("1. 00_tour.rhai")?;
    p.exp_string("A tour of the notebook")?;
    p.exp_string("Open which lesson?")?;
    p.send_line("77")?;
    p.exp_string("type a number from 1 to")?;
    p.exp_string("Open which lesson?")?;
    p.send_line("1")?;
    p.exp_string("Lesson 00_tour")?;
    p.exp_string("[1/13]")?;
    p.send_line(":quit")?;
    p.exp_eof()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
