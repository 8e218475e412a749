//! Prose cells: a small Markdown subset (headings, paragraphs, lists, `code`, **bold**, *italic*,
//! fenced code) rendered for the terminal and as HTML.

use super::svg::esc;

const BOLD: &str = "\x1b[1m";
const ITALIC: &str = "\x1b[3m";
const CYAN: &str = "\x1b[36m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Inline spans: `code`, **bold**, *italic*. `wrap(kind, text)` styles each.
fn inline(s: &str, wrap: &dyn Fn(&str, &str) -> String) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect();
        let span = |open: &str, kind: &str| -> Option<(String, usize)> {
            let body = rest.strip_prefix(open)?;
            let end = body.find(open)?;
            (end > 0).then(|| {
                (
                    wrap(kind, &body[..end]),
                    open.chars().count() * 2 + body[..end].chars().count(),
                )
            })
        };
        if let Some((text, used)) = span("`", "code")
            .or_else(|| span("**", "bold"))
            .or_else(|| span("*", "italic"))
        {
            out.push_str(&text);
            i += used;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Greedy word wrap to `width` columns (ignoring ANSI codes for the count).
fn wrap_words(text: &str, width: usize, indent: &str) -> Vec<String> {
    let visible = |s: &str| {
        let mut n = 0;
        let mut esc = false;
        for ch in s.chars() {
            if ch == '\x1b' {
                esc = true;
            } else if esc {
                esc = ch != 'm';
            } else {
                n += 1;
            }
        }
        n
    };
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && visible(&cur) + 1 + visible(w) > width.saturating_sub(indent.len()) {
            lines.push(format!("{indent}{cur}"));
            cur.clear();
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(format!("{indent}{cur}"));
    }
    lines
}

/// The lines of `md` with each list item's continuation lines joined onto the item, so that an
/// item wrapped over several source lines stays one item.
fn logical_lines(md: &str) -> Vec<String> {
    let is_item = |t: &str| {
        let t = t.trim_start();
        t.starts_with("- ") || t.starts_with("* ")
    };
    let mut out: Vec<String> = Vec::new();
    let (mut in_item, mut fenced) = (false, false);
    for line in md.lines() {
        let t = line.trim_end();
        let fence = t.trim_start().starts_with("```");
        if fence {
            fenced = !fenced;
        }
        let continues = in_item
            && !fenced
            && !fence
            && !t.trim().is_empty()
            && !is_item(t)
            && !t.starts_with('#');
        match out.last_mut() {
            Some(last) if continues => {
                last.push(' ');
                last.push_str(t.trim());
            }
            _ => {
                out.push(t.to_string());
                in_item = !fenced && is_item(t);
            }
        }
    }
    out
}

/// Markdown for the terminal, wrapped at `width`, with ANSI styling when `color`.
pub fn to_terminal(md: &str, color: bool, width: usize) -> String {
    let style = |kind: &str, t: &str| -> String {
        if !color {
            return if kind == "code" {
                format!("`{t}`")
            } else {
                t.to_string()
            };
        }
        match kind {
            "code" => format!("{CYAN}{t}{RESET}"),
            "bold" => format!("{BOLD}{t}{RESET}"),
            _ => format!("{ITALIC}{t}{RESET}"),
        }
    };
    let mut out = Vec::new();
    let mut para = String::new();
    let mut fenced = false;
    let flush = |para: &mut String, out: &mut Vec<String>| {
        if !para.is_empty() {
            out.extend(wrap_words(&inline(para, &style), width, ""));
            para.clear();
        }
    };
    for line in logical_lines(md) {
        let t = line.as_str();
        if t.trim_start().starts_with("```") {
            flush(&mut para, &mut out);
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push(if color {
                format!("    {DIM}{t}{RESET}")
            } else {
                format!("    {t}")
            });
        } else if let Some(h) = t.strip_prefix('#') {
            flush(&mut para, &mut out);
            let level = 1 + h.chars().take_while(|&c| c == '#').count();
            let text = h.trim_start_matches('#').trim();
            let text = if level == 1 {
                text.to_uppercase()
            } else {
                text.to_string()
            };
            out.push(if color {
                format!("{BOLD}{CYAN}{text}{RESET}")
            } else {
                text.clone()
            });
            if !color && level == 1 {
                out.push("=".repeat(text.chars().count()));
            }
        } else if let Some(item) = t
            .trim_start()
            .strip_prefix("- ")
            .or_else(|| t.trim_start().strip_prefix("* "))
        {
            flush(&mut para, &mut out);
            let body = wrap_words(&inline(item, &style), width, "    ");
            for (i, l) in body.into_iter().enumerate() {
                out.push(if i == 0 {
                    format!("  • {}", l.trim_start())
                } else {
                    l
                });
            }
        } else if t.trim().is_empty() {
            flush(&mut para, &mut out);
            if out.last().is_some_and(|l| !l.is_empty()) {
                out.push(String::new());
            }
        } else {
            if !para.is_empty() {
                para.push(' ');
            }
            para.push_str(t.trim());
        }
    }
    flush(&mut para, &mut out);
    out.join("\n")
}

/// Markdown as HTML.
pub fn to_html(md: &str) -> String {
    let style = |kind: &str, t: &str| match kind {
        "code" => format!("<code>{}</code>", esc(t)),
        "bold" => format!("<b>{}</b>", esc(t)),
        _ => format!("<i>{}</i>", esc(t)),
    };
    let mut out = String::new();
    let (mut para, mut in_list, mut fenced) = (Vec::<String>::new(), false, false);
    let close = |para: &mut Vec<String>, in_list: &mut bool, out: &mut String| {
        if !para.is_empty() {
            out.push_str(&format!(
                "<p>{}</p>\n",
                inline(&para.join(" "), &|k, t| style(k, t))
            ));
            para.clear();
        }
        if *in_list {
            out.push_str("</ul>\n");
            *in_list = false;
        }
    };
    for line in logical_lines(md) {
        let t = line.as_str();
        if t.trim_start().starts_with("```") {
            close(&mut para, &mut in_list, &mut out);
            out.push_str(if fenced { "</pre>\n" } else { "<pre>" });
            fenced = !fenced;
        } else if fenced {
            out.push_str(&esc(t));
            out.push('\n');
        } else if let Some(h) = t.strip_prefix('#') {
            close(&mut para, &mut in_list, &mut out);
            let level = (1 + h.chars().take_while(|&c| c == '#').count()).min(6);
            out.push_str(&format!(
                "<h{level}>{}</h{level}>\n",
                esc(h.trim_start_matches('#').trim())
            ));
        } else if let Some(item) = t
            .trim_start()
            .strip_prefix("- ")
            .or_else(|| t.trim_start().strip_prefix("* "))
        {
            if !para.is_empty() {
                close(&mut para, &mut in_list, &mut out);
            }
            if !in_list {
                out.push_str("<ul>\n");
                in_list = true;
            }
            out.push_str(&format!("<li>{}</li>\n", inline(item, &|k, t| style(k, t))));
        } else if t.trim().is_empty() {
            close(&mut para, &mut in_list, &mut out);
        } else {
            para.push(esc(t.trim()));
        }
    }
    close(&mut para, &mut in_list, &mut out);
    out
}
