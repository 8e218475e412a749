//! Data files: CSV text and IDX image/label bytes are parsed or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(table) = engine::io::csv::parse_csv(text, "fuzz.csv") {
                    let _ = table.into_dataset("label");
                }
            }
        }
        1 => {
            let _ = engine::io::idx::parse_images(rest, "fuzz-images");
        }
        _ => {
            let _ = engine::io::idx::parse_labels(rest, "fuzz-labels");
        }
    }
});
