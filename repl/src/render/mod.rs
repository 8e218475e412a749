//! What a cell can show besides text, and how it is drawn: in the terminal ([`term`], with 24-bit
//! colour or a plain fallback) and as SVG for the HTML export ([`svg`]). Prose is rendered by
//! [`markdown`]. The renderers know nothing about scripts or training: they draw [`Figure`]s.

pub mod html;
pub mod markdown;
pub mod svg;
pub mod term;

/// One named curve of a line chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A grayscale image, values in [0, 1], row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<f32>,
    pub label: String,
}

/// A picture a cell produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Figure {
    /// Line chart of several series (learning curves), optionally with a log-scale y axis.
    Lines {
        title: String,
        series: Vec<Series>,
        x_label: String,
        y_label: String,
        log_y: bool,
    },
    /// Points coloured by class. `names`, when not empty, labels each point with a word.
    Scatter {
        title: String,
        points: Vec<(f64, f64)>,
        classes: Vec<usize>,
        labels: Vec<String>,
        names: Vec<String>,
    },
    /// A grid of values (a decision boundary, attention weights, a confusion matrix). `overlay`
    /// holds points in the grid's unit square (x right, y up) drawn on top, coloured by class.
    Heatmap {
        title: String,
        rows: usize,
        cols: usize,
        values: Vec<f64>,
        row_labels: Vec<String>,
        col_labels: Vec<String>,
        overlay: Vec<(f64, f64, usize)>,
        /// Names of the overlay classes, shown as a legend.
        legend: Vec<String>,
    },
    /// Images in a grid.
    Images {
        title: String,
        images: Vec<Image>,
        columns: usize,
    },
}

impl Figure {
    /// The figure's title.
    pub fn title(&self) -> &str {
        match self {
            Figure::Lines { title, .. }
            | Figure::Scatter { title, .. }
            | Figure::Heatmap { title, .. }
            | Figure::Images { title, .. } => title,
        }
    }
}

/// Distinct colours for series and classes (Okabe–Ito, readable by colour-blind people).
pub const PALETTE: [(u8, u8, u8); 8] = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (240, 228, 66),
    (120, 120, 120),
];

/// The viridis colour map at `t` in [0, 1] (five stops, linearly interpolated).
pub fn viridis(t: f64) -> (u8, u8, u8) {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `(min, max)` of the finite values, or (0, 1) when there are none; a flat range is widened.
pub fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// A short form of a number for axis labels.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
