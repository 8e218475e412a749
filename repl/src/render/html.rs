//! The session as one self-contained HTML file: prose, code, text outputs and figures (as SVG).

use super::svg::{self, esc};
use super::{markdown, Figure};

/// One block of the exported page.
pub enum Block {
    Prose(String),
    Code {
        title: Option<String>,
        source: String,
    },
    Text(String),
    Figure(Figure),
    Check {
        passed: bool,
        message: String,
    },
    Error(String),
}

/// The page for `title` with `blocks` in order.
pub fn page(title: &str, blocks: &[Block]) -> String {
    let mut body = String::new();
    for b in blocks {
        match b {
            Block::Prose(md) => body.push_str(&format!(
                "<section class=\"prose\">{}</section>\n",
                markdown::to_html(md)
            )),
            Block::Code { title, source } => {
                if let Some(t) = title {
                    body.push_str(&format!("<div class=\"cell-title\">{}</div>\n", esc(t)));
                }
                body.push_str(&format!("<pre class=\"code\">{}</pre>\n", esc(source)));
            }
            Block::Text(t) => body.push_str(&format!("<pre class=\"out\">{}</pre>\n", esc(t))),
            Block::Figure(f) => body.push_str(&format!("<figure>{}</figure>\n", svg::render(f))),
            Block::Check { passed, message } => body.push_str(&format!(
                "<div class=\"check {}\">{} {}</div>\n",
                if *passed { "pass" } else { "fail" },
                if *passed { "✔" } else { "✘" },
                esc(message)
            )),
            Block::Error(e) => body.push_str(&format!("<pre class=\"error\">{}</pre>\n", esc(e))),
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\nbody{{font-family:sans-serif;max-width:760px;margin:2em auto;line-height:1.45;color:#222}}\npre{{padding:.6em;overflow-x:auto}}\npre.code{{background:#f4f4f8;border-left:3px solid #0072b2}}\npre.out{{background:#fafafa}}\npre.error{{background:#fff0f0;color:#a00}}\n.check.pass{{color:#007a4d}}.check.fail{{color:#c00;font-weight:bold}}\n.cell-title{{font-weight:bold;margin-top:1em}}\nfigure{{margin:1em 0}}\n</style></head><body>\n<h1>{t}</h1>\n{body}</body></html>\n",
        t = esc(title)
    )
}
