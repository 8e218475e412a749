//! Lesson files in the "percent" cell format that Jupytext, VS Code and Spyder read:
//!
//! ```text
//! // %% [markdown] A title
//! // # Prose, each line prefixed with `// `
//! // %% Another title
//! let x = tensor([1.0, 2.0]);    // Rhai code
//! ```
//!
//! A line starting `// %%` opens a cell; `[markdown]` (or `[md]`) makes it prose, no marker makes
//! it code, and any other text on the line is the cell's title. Lines before the first marker form
//! a prose cell if they are all comments.

use std::fmt;
use std::path::Path;

/// What a cell holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    Code,
    Markdown,
}

/// One cell of a lesson.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub kind: CellKind,
    pub title: Option<String>,
    /// Code as written, or prose with the `// ` prefixes removed.
    pub source: String,
    /// The 1-based line of the first line of `source` in the file.
    pub line: usize,
}

/// A parsed lesson.
#[derive(Clone, Debug, PartialEq)]
pub struct Lesson {
    pub name: String,
    pub cells: Vec<Cell>,
}

/// A malformed lesson file: the file, the line and what is wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct LessonError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LessonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for LessonError {}

const MARKER: &str = "// %%";

/// Parses the text of a lesson; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Lesson, LessonError> {
    let err = |line: usize, message: String| LessonError {
        file: file.to_string(),
        line,
        message,
    };
    let mut cells: Vec<Cell> = Vec::new();
    let mut current: Option<(CellKind, Option<String>, usize, Vec<&str>)> = None;
    let mut preamble: Vec<&str> = Vec::new();
    let finish = |cells: &mut Vec<Cell>,
                  cur: Option<(CellKind, Option<String>, usize, Vec<&str>)>|
     -> Result<(), LessonError> {
        let Some((kind, title, line, lines)) = cur else {
            return Ok(());
        };
        let mut body: Vec<String> = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            body.push(match kind {
                CellKind::Code => l.to_string(),
                CellKind::Markdown => {
                    match l.strip_prefix("// ").or_else(|| l.strip_prefix("//")) {
                        Some(rest) => rest.to_string(),
                        None if l.trim().is_empty() => String::new(),
                        None => {
                            return Err(err(
                                line + i,
                                format!(
                                    "a line of a markdown cell must start with `// `, found `{}`",
                                    l.trim()
                                ),
                            ))
                        }
                    }
                }
            });
        }
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
        let skip = body.iter().take_while(|l| l.trim().is_empty()).count();
        let source = body[skip..].join("\n");
        cells.push(Cell {
            kind,
            title,
            source,
            line: line + skip,
        });
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(rest) = line.strip_prefix(MARKER) {
            if current.is_none() && preamble.iter().any(|l| !l.trim().is_empty()) {
                let all_comments = preamble
                    .iter()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with("//"));
                let kind = if all_comments {
                    CellKind::Markdown
                } else {
                    CellKind::Code
                };
                finish(
                    &mut cells,
                    Some((kind, None, 1, std::mem::take(&mut preamble))),
                )?;
            }
            finish(&mut cells, current.take())?;
            let (kind, title) = parse_marker(rest).map_err(|m| err(n, m))?;
            current = Some((kind, title, n + 1, Vec::new()));
        } else if let Some((_, _, _, lines)) = current.as_mut() {
            lines.push(line);
        } else {
            preamble.push(line);
        }
    }
    if current.is_none() && preamble.iter().any(|l| !l.trim().is_empty()) {
        return Err(err(
            1,
            "no cells: a lesson needs `// %%` lines to mark its cells".into(),
        ));
    }
    finish(&mut cells, current)?;
    cells.retain(|c| !(c.source.trim().is_empty() && c.title.is_none()));
    let name = Path::new(file)
        .file_stem()
        .map_or_else(|| file.to_string(), |s| s.to_string_lossy().into_owned());
    Ok(Lesson { name, cells })
}

/// The kind and title from the text after `// %%`.
fn parse_marker(rest: &str) -> Result<(CellKind, Option<String>), String> {
    let mut kind = CellKind::Code;
    let mut title = rest.to_string();
    if let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else {
            return Err(format!(
                "unterminated cell-type marker `{}`: expected `[markdown]`",
                rest[open..].trim()
            ));
        };
        let marker = rest[open + 1..open + close].trim();
        kind = match marker {
            "markdown" | "md" => CellKind::Markdown,
            "code" => CellKind::Code,
            other => return Err(format!("unknown cell marker `[{other}]`: use `// %%` for code or `// %% [markdown]` for prose")),
        };
        title = format!("{}{}", &rest[..open], &rest[open + close + 1..]);
    }
    let title = title.trim();
    Ok((kind, (!title.is_empty()).then(|| title.to_string())))
}

/// Writes cells back in the percent format (the inverse of [`parse`]).
pub fn write(cells: &[Cell]) -> String {
    let mut out = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(MARKER);
        if c.kind == CellKind::Markdown {
            out.push_str(" [markdown]");
        }
        if let Some(t) = &c.title {
            out.push(' ');
            out.push_str(t);
        }
        out.push('\n');
        for line in c.source.lines() {
            match c.kind {
                CellKind::Code => out.push_str(line),
                CellKind::Markdown if line.is_empty() => out.push_str("//"),
                // "// %%..." would read back as a cell marker; "//%%..." reads back as this line.
                CellKind::Markdown if line.starts_with("%%") => {
                    out.push_str("//");
                    out.push_str(line);
                }
                CellKind::Markdown => {
                    out.push_str("// ");
                    out.push_str(line);
                }
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "// %% [markdown] Welcome\n// # Hello\n//\n// Some *prose*.\n\n// %% First step\nlet x = 1;\nx + 1\n\n// %%\nprint(x);\n";

    #[test]
    fn parses_cells_titles_and_lines() {
        let l = parse(SAMPLE, "tutorials/00_tour.rhai").unwrap();
        assert_eq!(l.name, "00_tour");
        assert_eq!(l.cells.len(), 3);
        assert_eq!(
            (l.cells[0].kind, l.cells[0].title.as_deref()),
            (CellKind::Markdown, Some("Welcome"))
        );
        assert_eq!(l.cells[0].source, "# Hello\n\nSome *prose*.");
        assert_eq!(
            (
                l.cells[1].kind,
                l.cells[1].title.as_deref(),
                l.cells[1].line
            ),
            (CellKind::Code, Some("First step"), 7)
        );
        assert_eq!(l.cells[1].source, "let x = 1;\nx + 1");
        assert_eq!(l.cells[2].title, None);
    }

    #[test]
    fn round_trips_through_write() {
        let l = parse(SAMPLE, "a.rhai").unwrap();
        let again = parse(&write(&l.cells), "a.rhai").unwrap();
        assert_eq!(
            l.cells
                .iter()
                .map(|c| (&c.kind, &c.title, &c.source))
                .collect::<Vec<_>>(),
            again
                .cells
                .iter()
                .map(|c| (&c.kind, &c.title, &c.source))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = parse("// %% [python]\nx\n", "bad.rhai").unwrap_err();
        assert_eq!(e.to_string(), "bad.rhai:1: unknown cell marker `[python]`: use `// %%` for code or `// %% [markdown]` for prose");
        let e = parse("// %% [markdown\nx\n", "bad.rhai").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("bad.rhai:1: unterminated cell-type marker"));
        let e = parse("// %% [markdown]\n// fine\nnot prose\n", "bad.rhai").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad.rhai:3: a line of a markdown cell must start with `// `, found `not prose`"
        );
        assert!(parse("let x = 1;\n", "bad.rhai")
            .unwrap_err()
            .to_string()
            .contains("no cells"));
    }
}
