//! The lesson format round-trips: writing parsed cells and parsing them again gives the same cells.
//! Inputs that once broke this, found by `fuzz/fuzz_targets/lesson_parser.rs`, are kept in
//! `tests/fuzz_regressions/` and replayed here.

use notebook::lesson::{parse, write};

fn round_trips(text: &str, what: &str) {
    let Ok(lesson) = parse(text, "t.rhai") else {
        return;
    };
    let again = parse(&write(&lesson.cells), "t.rhai")
        .unwrap_or_else(|e| panic!("{what}: a written lesson does not parse: {e}"));
    assert_eq!(
        again.cells.len(),
        lesson.cells.len(),
        "{what}: cell count changed"
    );
    for (a, b) in lesson.cells.iter().zip(&again.cells) {
        assert_eq!(
            (a.kind, &a.title, &a.source),
            (b.kind, &b.title, &b.source),
            "{what}"
        );
    }
}

#[test]
fn a_prose_line_that_starts_with_percent_signs_stays_prose() {
    // `//%%[ markdown] x` is prose (the marker needs `// %%`); written back as `// %%...` it
    // used to become a new cell.
    round_trips(
        "// %% [markdown] T\n// text\n//%%[ markdown] x\n// more\n",
        "inline",
    );
}

#[test]
fn every_lesson_and_every_fuzz_regression_round_trips() {
    let dirs = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tutorials"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_regressions"),
    ];
    let mut n = 0;
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rhai") {
                let bytes = std::fs::read(&path).unwrap();
                round_trips(
                    &String::from_utf8_lossy(&bytes),
                    &path.display().to_string(),
                );
                n += 1;
            }
        }
    }
    assert!(n >= 14, "only {n} files found");
}
