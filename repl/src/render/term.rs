//! Figures drawn with characters: braille dots for line charts and scatter plots (2×4 dots per
//! character), upper-half blocks with 24-bit foreground and background colours for heat maps and
//! images (two pixels per character). Without colour (`NO_COLOR`, or output that is not a
//! terminal) the same figures are drawn with plain markers and an ASCII shading ramp.

use super::{range, short, viridis, Figure, Image, Series, PALETTE};

/// How to draw: with 24-bit colour or plain, and how wide.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    /// Plot area width in characters.
    pub width: usize,
    /// Plot area height in characters (charts).
    pub height: usize,
}

impl Style {
    /// Colour when standard output is a terminal and `NO_COLOR` is unset.
    pub fn detect() -> Style {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: tty && !no_color,
            width: 60,
            height: 14,
        }
    }

    /// No colour, the default size: what tests and logs see.
    pub fn plain() -> Style {
        Style {
            color: false,
            width: 60,
            height: 14,
        }
    }
}

fn fg((r, g, b): (u8, u8, u8)) -> String {
    format!("\x1b[38;2;{r};{g};{b}m")
}

fn bg((r, g, b): (u8, u8, u8)) -> String {
    format!("\x1b[48;2;{r};{g};{b}m")
}

const RESET: &str = "\x1b[0m";
const MARKERS: [char; 8] = ['*', 'o', '+', 'x', '#', '@', '%', '&'];
const RAMP: &[u8] = b" .:-=+*#%@";

/// A character grid that points are plotted into: braille dots in colour mode, one marker per
/// cell in plain mode.
struct Canvas {
    w: usize,
    h: usize,
    color: bool,
    dots: Vec<u8>,
    ink: Vec<Option<usize>>,
    /// Characters of point names, drawn instead of dots.
    text: Vec<Option<char>>,
}

impl Canvas {
    fn new(w: usize, h: usize, color: bool) -> Canvas {
        Canvas {
            w,
            h,
            color,
            dots: vec![0; w * h],
            ink: vec![None; w * h],
            text: vec![None; w * h],
        }
    }

    /// Sets the dot at (x, y) in [0, 1]² (y up) in colour `k`.
    fn plot(&mut self, x: f64, y: f64, k: usize) {
        if !((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y)) {
            return;
        }
        let (dw, dh) = (self.w * 2, self.h * 4);
        let dx = ((x * (dw - 1) as f64).round() as usize).min(dw - 1);
        let dy = (((1.0 - y) * (dh - 1) as f64).round() as usize).min(dh - 1);
        let cell = (dy / 4) * self.w + dx / 2;
        const BITS: [[u8; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];
        self.dots[cell] |= BITS[dy % 4][dx % 2];
        self.ink[cell] = Some(k);
    }

    /// Writes `name` starting one cell right of the point (x, y) in [0, 1]², in colour `k`, into
    /// cells that hold nothing yet; stops at the first occupied cell or the edge.
    fn label(&mut self, x: f64, y: f64, name: &str, k: usize) {
        if !((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y)) {
            return;
        }
        let col = ((x * (self.w * 2 - 1) as f64).round() as usize / 2).min(self.w - 1) + 1;
        let row = (((1.0 - y) * (self.h * 4 - 1) as f64).round() as usize / 4).min(self.h - 1);
        for (j, ch) in name.chars().enumerate() {
            let c = col + j;
            if c >= self.w {
                break;
            }
            let i = row * self.w + c;
            if self.ink[i].is_some() || self.text[i].is_some() {
                break;
            }
            self.text[i] = Some(ch);
            self.ink[i] = Some(k);
        }
    }

    /// A straight segment between two points, as dots.
    fn line(&mut self, a: (f64, f64), b: (f64, f64), k: usize) {
        let steps = (((b.0 - a.0).abs() * self.w as f64 * 2.0)
            .max((b.1 - a.1).abs() * self.h as f64 * 4.0)
            .ceil() as usize)
            .clamp(1, 4000);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            self.plot(a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, k);
        }
    }

    fn row(&self, r: usize) -> String {
        let mut s = String::new();
        for c in 0..self.w {
            let i = r * self.w + c;
            match (self.ink[i], self.color) {
                (None, _) => s.push(' '),
                (Some(k), true) if self.text[i].is_some() => {
                    s.push_str(&fg(PALETTE[k % PALETTE.len()]));
                    s.push(self.text[i].unwrap_or(' '));
                    s.push_str(RESET);
                }
                (Some(_), false) if self.text[i].is_some() => s.push(self.text[i].unwrap_or(' ')),
                (Some(k), true) => {
                    s.push_str(&fg(PALETTE[k % PALETTE.len()]));
                    s.push(char::from_u32(0x2800 + self.dots[i] as u32).unwrap_or('?'));
                    s.push_str(RESET);
                }
                (Some(k), false) => s.push(MARKERS[k % MARKERS.len()]),
            }
        }
        s
    }
}

fn legend(names: &[String], color: bool) -> String {
    let items: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(k, n)| {
            if color {
                format!("{}━━{} {n}", fg(PALETTE[k % PALETTE.len()]), RESET)
            } else {
                format!("{} {n}", MARKERS[k % MARKERS.len()])
            }
        })
        .collect();
    items.join("   ")
}

/// The axes of a chart: value ranges, labels, and whether y is on a log scale.
struct Axes<'a> {
    x: (f64, f64),
    y: (f64, f64),
    x_label: &'a str,
    y_label: &'a str,
    log_y: bool,
}

/// Frames a chart: title, y labels on the left, the plot rows, the x axis and labels.
fn frame(title: &str, rows: Vec<String>, axes: Axes<'_>, width: usize) -> String {
    let Axes {
        x,
        y,
        x_label,
        y_label,
        log_y,
    } = axes;
    let fmt_y = |v: f64| {
        if log_y {
            short(10f64.powf(v))
        } else {
            short(v)
        }
    };
    let labels = [fmt_y(y.1), fmt_y((y.0 + y.1) / 2.0), fmt_y(y.0)];
    let lw = labels.iter().map(String::len).max().unwrap_or(1);
    let mut out = String::new();
    if !title.is_empty() {
        out.push_str(&format!(
            "{:lw$}  {title}{}\n",
            "",
            if log_y { " (log scale)" } else { "" }
        ));
    }
    let h = rows.len();
    for (r, row) in rows.into_iter().enumerate() {
        let label = if r == 0 {
            &labels[0]
        } else if r == h / 2 {
            &labels[1]
        } else if r + 1 == h {
            &labels[2]
        } else {
            ""
        };
        out.push_str(&format!("{label:>lw$} ┤{row}\n"));
    }
    out.push_str(&format!("{:lw$} └{}\n", "", "─".repeat(width)));
    let (xl, xr) = (short(x.0), short(x.1));
    let gap = width.saturating_sub(xl.len() + xr.len() + x_label.len()) / 2;
    out.push_str(&format!(
        "{:lw$}  {xl}{:gap$}{x_label}{:gap2$}{xr}\n",
        "",
        "",
        "",
        gap2 = width.saturating_sub(xl.len() + xr.len() + x_label.len() + gap)
    ));
    if !y_label.is_empty() {
        out.push_str(&format!("{:lw$}  y: {y_label}\n", ""));
    }
    out
}

fn lines(
    title: &str,
    series: &[Series],
    x_label: &str,
    y_label: &str,
    log_y: bool,
    s: Style,
) -> String {
    let tf = |v: f64| {
        if log_y {
            if v > 0.0 {
                v.log10()
            } else {
                f64::NAN
            }
        } else {
            v
        }
    };
    let xr = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let yr = range(series.iter().flat_map(|s| s.points.iter().map(|p| tf(p.1))));
    let mut c = Canvas::new(s.width, s.height, s.color);
    let norm = |p: &(f64, f64)| {
        (
            (p.0 - xr.0) / (xr.1 - xr.0),
            (tf(p.1) - yr.0) / (yr.1 - yr.0),
        )
    };
    for (k, ser) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = ser.points.iter().map(norm).collect();
        if s.color {
            for w in pts.windows(2) {
                c.line(w[0], w[1], k);
            }
        }
        for &(x, y) in &pts {
            c.plot(x, y, k);
        }
    }
    let rows = (0..s.height).map(|r| c.row(r)).collect();
    let axes = Axes {
        x: xr,
        y: yr,
        x_label,
        y_label,
        log_y,
    };
    let mut out = frame(title, rows, axes, s.width);
    let names: Vec<String> = series.iter().map(|x| x.name.clone()).collect();
    if names.len() > 1 || names.first().is_some_and(|n| !n.is_empty()) {
        out.push_str(&format!("  {}\n", legend(&names, s.color)));
    }
    out
}

fn scatter(
    title: &str,
    points: &[(f64, f64)],
    classes: &[usize],
    labels: &[String],
    names: &[String],
    s: Style,
) -> String {
    let xr = range(points.iter().map(|p| p.0));
    let yr = range(points.iter().map(|p| p.1));
    let mut c = Canvas::new(s.width, s.height, s.color);
    let at = |p: &(f64, f64)| ((p.0 - xr.0) / (xr.1 - xr.0), (p.1 - yr.0) / (yr.1 - yr.0));
    for (i, p) in points.iter().enumerate() {
        let (x, y) = at(p);
        c.plot(x, y, classes.get(i).copied().unwrap_or(0));
    }
    // Names after the dots, so no name hides a point; a name that would overlap another is cut.
    for (i, (p, name)) in points.iter().zip(names).enumerate() {
        let (x, y) = at(p);
        c.label(x, y, name, classes.get(i).copied().unwrap_or(0));
    }
    let rows = (0..s.height).map(|r| c.row(r)).collect();
    let axes = Axes {
        x: xr,
        y: yr,
        x_label: "",
        y_label: "",
        log_y: false,
    };
    let mut out = frame(title, rows, axes, s.width);
    if !labels.is_empty() {
        out.push_str(&format!("  {}\n", legend(labels, s.color)));
    }
    out
}

/// Cells of a `rows`×`cols` grid, each a value in [0, 1] (or `None` for an overlay point of class
/// k, stored as `Err(k)`), drawn two rows per character line in colour, one in plain mode.
fn blocks(
    rows: usize,
    cols: usize,
    at: impl Fn(usize, usize) -> Result<f64, usize>,
    color: bool,
    gray: bool,
) -> Vec<String> {
    let colour_of = |v: Result<f64, usize>| match v {
        Ok(t) if gray => {
            let g = (t.clamp(0.0, 1.0) * 255.0).round() as u8;
            (g, g, g)
        }
        Ok(t) => viridis(t),
        Err(k) => PALETTE[k % PALETTE.len()],
    };
    let mut out = Vec::new();
    if color {
        for r in (0..rows).step_by(2) {
            let mut line = String::new();
            for c in 0..cols {
                let top = colour_of(at(r, c));
                if r + 1 < rows {
                    line.push_str(&format!("{}{}▀", fg(top), bg(colour_of(at(r + 1, c)))));
                } else {
                    line.push_str(&format!("{}▀", fg(top)));
                }
                line.push_str(RESET);
            }
            out.push(line);
        }
    } else {
        for r in 0..rows {
            out.push(
                (0..cols)
                    .map(|c| match at(r, c) {
                        Ok(t) => {
                            RAMP[((t.clamp(0.0, 1.0) * (RAMP.len() - 1) as f64).round() as usize)
                                .min(RAMP.len() - 1)] as char
                        }
                        // Digits: unlike the markers, none is a shade of the ramp.
                        Err(k) => char::from_digit((k % 10) as u32, 10).unwrap_or('?'),
                    })
                    .collect(),
            );
        }
    }
    out
}

fn heatmap(f: &Figure, s: Style) -> String {
    let Figure::Heatmap {
        title,
        rows,
        cols,
        values,
        row_labels,
        col_labels,
        overlay,
        legend: names,
    } = f
    else {
        return String::new();
    };
    let (rows, cols) = (*rows, *cols);
    let (lo, hi) = range(values.iter().copied());
    // Small grids are scaled up so every cell is visible: `sx` pixels across per cell, and as many
    // down in colour (half-blocks make square pixels) or half as many in plain text (a character
    // is about twice as tall as it is wide).
    let sx = s.width.checked_div(cols).map_or(1, |v| v.clamp(1, 4));
    let sy = if s.color { sx } else { (sx / 2).max(1) };
    let (pr, pc) = (rows * sy, cols * sx);
    if pr == 0 || pc == 0 {
        return format!("{title}\n(empty)\n");
    }
    let mut marks = std::collections::HashMap::new();
    for &(x, y, k) in overlay {
        if (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y) {
            let c = ((x * (pc - 1) as f64).round() as usize).min(pc - 1);
            let r = (((1.0 - y) * (pr - 1) as f64).round() as usize).min(pr - 1);
            marks.insert((r, c), k);
        }
    }
    let at = |r: usize, c: usize| match marks.get(&(r, c)) {
        Some(&k) => Err(k),
        None => Ok((values[(r / sy) * cols + c / sx] - lo) / (hi - lo)),
    };
    let lines = blocks(pr, pc, at, s.color, false);
    let lw = row_labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    if !title.is_empty() {
        out.push_str(&format!("{:lw$} {title}\n", ""));
    }
    let per_line = if s.color { 2 } else { 1 };
    let mut last_label = usize::MAX;
    for (i, line) in lines.iter().enumerate() {
        let r = (i * per_line) / sy;
        let label = if r != last_label {
            row_labels.get(r).map_or("", String::as_str)
        } else {
            ""
        };
        last_label = r;
        out.push_str(&format!("{label:>lw$} {line}\n"));
    }
    if !col_labels.is_empty() {
        let cells: String = col_labels
            .iter()
            .map(|l| format!("{:<w$}", l.chars().take(sx).collect::<String>(), w = sx))
            .collect();
        out.push_str(&format!("{:lw$} {cells}\n", ""));
    }
    out.push_str(&format!(
        "{:lw$} scale: {} (low) .. {} (high)\n",
        "",
        short(lo),
        short(hi)
    ));
    if !names.is_empty() {
        let items: Vec<String> = if s.color {
            vec![legend(names, true)]
        } else {
            names
                .iter()
                .enumerate()
                .map(|(k, n)| format!("{} {n}", k % 10))
                .collect()
        };
        out.push_str(&format!("{:lw$} {}\n", "", items.join("   ")));
    }
    out
}

/// The widest image grid, in characters, before images are shrunk to fit.
const MAX_GRID_WIDTH: usize = 100;

/// `im` with each `f`×`f` block of pixels averaged into one (edges take what is there).
fn shrink(im: &Image, f: usize) -> Image {
    if f <= 1 {
        return im.clone();
    }
    let (h, w) = (im.height.div_ceil(f), im.width.div_ceil(f));
    let mut pixels = Vec::with_capacity(h * w);
    for r in 0..h {
        for c in 0..w {
            let (mut sum, mut n) = (0.0, 0);
            for y in r * f..((r + 1) * f).min(im.height) {
                for x in c * f..((c + 1) * f).min(im.width) {
                    sum += im.pixels[y * im.width + x];
                    n += 1;
                }
            }
            pixels.push(sum / n.max(1) as f32);
        }
    }
    Image {
        height: h,
        width: w,
        pixels,
        label: im.label.clone(),
    }
}

fn images(title: &str, imgs: &[Image], columns: usize, s: Style) -> String {
    let mut out = String::new();
    if !title.is_empty() {
        out.push_str(&format!("{title}\n"));
    }
    let columns = columns.max(1);
    // Keep a grid within about 100 characters: shrink the images (averaging f×f blocks) by the
    // smallest factor that fits, but never below 7 pixels across.
    let widest = imgs.iter().map(|im| im.width).max().unwrap_or(1);
    let factor = (1..=4)
        .find(|&f| {
            columns * (widest.div_ceil(f) + 1) <= MAX_GRID_WIDTH || widest.div_ceil(f + 1) < 7
        })
        .unwrap_or(4);
    let shrunk: Vec<Image> = imgs.iter().map(|im| shrink(im, factor)).collect();
    let imgs = &shrunk[..];
    for chunk in imgs.chunks(columns) {
        let rendered: Vec<Vec<String>> = chunk
            .iter()
            .map(|im| {
                blocks(
                    im.height,
                    im.width,
                    |r, c| Ok(im.pixels[r * im.width + c] as f64),
                    s.color,
                    true,
                )
            })
            .collect();
        let height = rendered.iter().map(Vec::len).max().unwrap_or(0);
        for r in 0..height {
            let parts: Vec<String> = rendered
                .iter()
                .zip(chunk)
                .map(|(lines, im)| {
                    lines
                        .get(r)
                        .cloned()
                        .unwrap_or_else(|| " ".repeat(im.width))
                })
                .collect();
            out.push_str(&parts.join(" "));
            out.push('\n');
        }
        if chunk.iter().any(|im| !im.label.is_empty()) {
            let labels: Vec<String> = chunk
                .iter()
                .map(|im| {
                    format!(
                        "{:^w$}",
                        im.label.chars().take(im.width).collect::<String>(),
                        w = im.width
                    )
                })
                .collect();
            out.push_str(&labels.join(" "));
            out.push('\n');
        }
    }
    out
}

/// The figure as lines of text (with ANSI colour codes when `style.color`).
pub fn render(f: &Figure, style: Style) -> String {
    match f {
        Figure::Lines {
            title,
            series,
            x_label,
            y_label,
            log_y,
        } => lines(title, series, x_label, y_label, *log_y, style),
        Figure::Scatter {
            title,
            points,
            classes,
            labels,
            names,
        } => scatter(title, points, classes, labels, names, style),
        Figure::Heatmap { .. } => heatmap(f, style),
        Figure::Images {
            title,
            images: imgs,
            columns,
        } => images(title, imgs, *columns, style),
    }
}
