//! How cells and results look in the terminal: prose rendered, code highlighted, outputs, errors.

use crate::lesson::{Cell, CellKind};
use crate::render::markdown;
use crate::session::Ran;

const KEYWORDS: [&str; 16] = [
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "return", "break",
    "continue", "true", "false", "import", "private",
];

/// Rhai code with keywords, numbers, strings and comments coloured.
pub fn highlight(code: &str, color: bool) -> String {
    if !color {
        return code.to_string();
    }
    let mut out = String::new();
    for line in code.lines() {
        let (body, comment) = match line.find("//") {
            Some(i) if !line[..i].contains('"') => (&line[..i], &line[i..]),
            _ => (line, ""),
        };
        let mut word = String::new();
        let mut in_str = false;
        let flush = |word: &mut String, out: &mut String| {
            if word.is_empty() {
                return;
            }
            if KEYWORDS.contains(&word.as_str()) {
                out.push_str(&format!("\x1b[1;35m{word}\x1b[0m"));
            } else if word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                out.push_str(&format!("\x1b[33m{word}\x1b[0m"));
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for ch in body.chars() {
            if in_str {
                out.push(ch);
                if ch == '"' {
                    out.push_str("\x1b[0m");
                    in_str = false;
                }
            } else if ch == '"' {
                flush(&mut word, &mut out);
                out.push_str("\x1b[32m\"");
                in_str = true;
            } else if ch.is_alphanumeric()
                || ch == '_'
                || (ch == '.' && word.chars().next().is_some_and(|c| c.is_ascii_digit()))
            {
                word.push(ch);
            } else {
                flush(&mut word, &mut out);
                out.push(ch);
            }
        }
        flush(&mut word, &mut out);
        if in_str {
            out.push_str("\x1b[0m");
        }
        if !comment.is_empty() {
            out.push_str(&format!("\x1b[90m{comment}\x1b[0m"));
        }
        out.push('\n');
    }
    out.trim_end_matches('\n').to_string()
}

/// The header line of cell `i` of `n`.
pub fn cell_header(i: usize, n: usize, cell: &Cell, color: bool) -> String {
    let kind = if cell.kind == CellKind::Code {
        "code"
    } else {
        "prose"
    };
    let title = cell
        .title
        .as_deref()
        .map(|t| format!(" — {t}"))
        .unwrap_or_default();
    let text = format!("── [{}/{n}] {kind}{title} ", i + 1);
    let rule = "─".repeat(72usize.saturating_sub(text.chars().count()));
    if color {
        format!("\x1b[90m{text}{rule}\x1b[0m")
    } else {
        format!("{text}{rule}")
    }
}

/// A cell as shown before it runs: prose rendered, code highlighted and indented.
pub fn show_cell(cell: &Cell, color: bool) -> String {
    match cell.kind {
        CellKind::Markdown => markdown::to_terminal(&cell.source, color, 88),
        CellKind::Code => highlight(&cell.source, color)
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// What follows a run: the value and the error (outputs were printed as they came).
pub fn show_result(r: &Ran, color: bool) -> String {
    let mut s = String::new();
    if let Some(v) = &r.value {
        s.push_str(&format!(
            "{}{v}\n",
            if color { "\x1b[90m=>\x1b[0m " } else { "=> " }
        ));
    }
    if let Some(e) = &r.error {
        if color {
            s.push_str(&format!("\x1b[31merror: {e}\x1b[0m\n"));
        } else {
            s.push_str(&format!("error: {e}\n"));
        }
    }
    s
}
