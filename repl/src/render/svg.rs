//! Figures as standalone SVG, for the HTML export.

use std::fmt::Write;

use super::{range, short, viridis, Figure, PALETTE};

const W: f64 = 560.0;
const H: f64 = 300.0;
const M: f64 = 48.0;

fn rgb((r, g, b): (u8, u8, u8)) -> String {
    format!("rgb({r},{g},{b})")
}

/// Escapes text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn axes(out: &mut String, title: &str, x: (f64, f64), y: (f64, f64), log_y: bool) {
    let fy = |v: f64| {
        if log_y {
            short(10f64.powf(v))
        } else {
            short(v)
        }
    };
    let _ = write!(
        out,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let _ = write!(
        out,
        r#"<line x1="{M}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{M}" y1="{M}" x2="{M}" y2="{}" stroke="black"/>"#,
        H - M,
        W - 10.0,
        H - M,
        H - M
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" font-size="11">{}</text>"#,
        M - 4.0,
        M + 4.0,
        fy(y.1)
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" font-size="11">{}</text>"#,
        M - 4.0,
        H - M,
        fy(y.0)
    );
    let _ = write!(
        out,
        r#"<text x="{M}" y="{}" font-size="11">{}</text>"#,
        H - M + 14.0,
        short(x.0)
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" font-size="11">{}</text>"#,
        W - 10.0,
        H - M + 14.0,
        short(x.1)
    );
}

fn legend(out: &mut String, names: &[String]) {
    for (k, n) in names.iter().enumerate() {
        let x = M + 110.0 * k as f64;
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{}" width="12" height="4" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            H - 12.0,
            rgb(PALETTE[k % 8]),
            x + 16.0,
            H - 7.0,
            esc(n)
        );
    }
}

/// The figure as an `<svg>` element.
pub fn render(f: &Figure) -> String {
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
    );
    let (pw, ph) = (W - M - 10.0, H - 2.0 * M);
    match f {
        Figure::Lines {
            title,
            series,
            log_y,
            ..
        } => {
            let tf = |v: f64| if *log_y { v.log10() } else { v };
            let xr = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
            let yr = range(series.iter().flat_map(|s| s.points.iter().map(|p| tf(p.1))));
            axes(&mut out, title, xr, yr, *log_y);
            for (k, s) in series.iter().enumerate() {
                let pts: Vec<String> = s
                    .points
                    .iter()
                    .filter(|p| tf(p.1).is_finite())
                    .map(|p| {
                        format!(
                            "{:.1},{:.1}",
                            M + (p.0 - xr.0) / (xr.1 - xr.0) * pw,
                            H - M - (tf(p.1) - yr.0) / (yr.1 - yr.0) * ph
                        )
                    })
                    .collect();
                let _ = write!(
                    out,
                    r#"<polyline fill="none" stroke-width="2" stroke="{}" points="{}"/>"#,
                    rgb(PALETTE[k % 8]),
                    pts.join(" ")
                );
            }
            legend(
                &mut out,
                &series.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            );
        }
        Figure::Scatter {
            title,
            points,
            classes,
            labels,
            names,
        } => {
            let xr = range(points.iter().map(|p| p.0));
            let yr = range(points.iter().map(|p| p.1));
            axes(&mut out, title, xr, yr, false);
            for (i, p) in points.iter().enumerate() {
                let k = classes.get(i).copied().unwrap_or(0);
                let (cx, cy) = (
                    M + (p.0 - xr.0) / (xr.1 - xr.0) * pw,
                    H - M - (p.1 - yr.0) / (yr.1 - yr.0) * ph,
                );
                let _ = write!(
                    out,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="2.5" fill="{}"/>"#,
                    rgb(PALETTE[k % 8])
                );
                if let Some(name) = names.get(i) {
                    let _ = write!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                        cx + 4.0,
                        cy + 4.0,
                        esc(name)
                    );
                }
            }
            legend(&mut out, labels);
        }
        Figure::Heatmap {
            title,
            rows,
            cols,
            values,
            overlay,
            ..
        } => {
            let (lo, hi) = range(values.iter().copied());
            let _ = write!(
                out,
                r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
                W / 2.0,
                esc(title)
            );
            let cell = (pw / (*cols).max(1) as f64).min(ph / (*rows).max(1) as f64);
            for r in 0..*rows {
                for c in 0..*cols {
                    let v = (values[r * cols + c] - lo) / (hi - lo);
                    let _ = write!(
                        out,
                        r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{}"/>"#,
                        M + c as f64 * cell,
                        M + r as f64 * cell,
                        cell + 0.05,
                        cell + 0.05,
                        rgb(viridis(v))
                    );
                }
            }
            for &(x, y, k) in overlay {
                let _ = write!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}" stroke="white" stroke-width="0.5"/>"#,
                    M + x * cell * *cols as f64,
                    M + (1.0 - y) * cell * *rows as f64,
                    rgb(PALETTE[k % 8])
                );
            }
        }
        Figure::Images {
            title,
            images,
            columns,
        } => {
            let _ = write!(
                out,
                r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
                W / 2.0,
                esc(title)
            );
            let cols = (*columns).max(1);
            let iw = images.iter().map(|i| i.width).max().unwrap_or(1);
            let ih = images.iter().map(|i| i.height).max().unwrap_or(1);
            let rows_needed = images.len().div_ceil(cols);
            let px = ((W - 20.0) / (cols * (iw + 2)) as f64)
                .min((H - 40.0) / (rows_needed * (ih + 4)) as f64);
            for (n, im) in images.iter().enumerate() {
                let (ox, oy) = (
                    10.0 + (n % cols) as f64 * (iw + 2) as f64 * px,
                    28.0 + (n / cols) as f64 * (ih + 4) as f64 * px,
                );
                for r in 0..im.height {
                    for c in 0..im.width {
                        let g = (im.pixels[r * im.width + c].clamp(0.0, 1.0) * 255.0) as u8;
                        let _ = write!(
                            out,
                            r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="rgb({g},{g},{g})"/>"#,
                            ox + c as f64 * px,
                            oy + r as f64 * px,
                            px + 0.05,
                            px + 0.05
                        );
                    }
                }
                if !im.label.is_empty() {
                    let _ = write!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                        ox + im.width as f64 * px / 2.0,
                        oy + (im.height as f64 + 3.0) * px,
                        esc(&im.label)
                    );
                }
            }
        }
    }
    out.push_str("</svg>");
    out
}
