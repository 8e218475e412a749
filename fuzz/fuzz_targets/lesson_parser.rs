//! Lesson files: parsing any text, and compiling each code cell as Rhai, must return a value or
//! an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(lesson) = notebook::lesson::parse(text, "fuzz.rhai") {
        let engine = rhai::Engine::new_raw();
        for cell in &lesson.cells {
            let _ = engine.compile(&cell.source);
        }
        // Writing the cells back and parsing again gives the same cells.
        let again = notebook::lesson::parse(&notebook::lesson::write(&lesson.cells), "fuzz.rhai")
            .expect("a written lesson parses");
        assert_eq!(again.cells.len(), lesson.cells.len());
    }
});
