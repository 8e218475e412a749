//! Snapshot tests of the terminal renderers (plain style, so the snapshots are readable text) and of
//! prose. Set UPDATE_SNAPSHOTS=1 to rewrite the files in tests/snapshots/ after a deliberate change.

use notebook::render::markdown;
use notebook::render::term::{render, Style};
use notebook::render::{Figure, Image, Series};

fn snapshot(name: &str, actual: &str) {
    let path = format!("{}/tests/snapshots/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("missing snapshot {path}; run with UPDATE_SNAPSHOTS=1 to create it")
    });
    assert_eq!(
        actual, expected,
        "{name} changed; if that is intended, rerun with UPDATE_SNAPSHOTS=1 and review the diff"
    );
}

fn curve(name: &str, f: impl Fn(f64) -> f64) -> Series {
    Series {
        name: name.into(),
        points: (1..=30).map(|i| (i as f64, f(i as f64))).collect(),
    }
}

#[test]
fn line_chart() {
    let f = Figure::Lines {
        title: "learning curves".into(),
        series: vec![
            curve("train", |e| 2.0 / e),
            curve("val", |e| 2.0 / e + 0.02 * e),
        ],
        x_label: "epoch".into(),
        y_label: "loss".into(),
        log_y: false,
    };
    snapshot("lines", &render(&f, Style::plain()));
    let log = Figure::Lines {
        title: "log scale".into(),
        series: vec![curve("", |e| 10f64.powf(-e / 10.0))],
        x_label: String::new(),
        y_label: String::new(),
        log_y: true,
    };
    snapshot("lines_log", &render(&log, Style::plain()));
}

#[test]
fn scatter_plot() {
    let points: Vec<(f64, f64)> = (0..40)
        .map(|i| {
            (
                (i as f64 * 0.7).cos() * (1.0 + (i % 2) as f64),
                (i as f64 * 0.7).sin() * (1.0 + (i % 2) as f64),
            )
        })
        .collect();
    let classes = (0..40).map(|i| i % 2).collect();
    snapshot(
        "scatter",
        &render(
            &Figure::Scatter {
                title: "two rings".into(),
                points,
                classes,
                labels: vec!["inner".into(), "outer".into()],
                names: Vec::new(),
            },
            Style::plain(),
        ),
    );
}

#[test]
fn heatmap_with_labels_and_overlay() {
    let values: Vec<f64> = (0..16).map(|i| ((i % 4) * (i / 4)) as f64).collect();
    let f = Figure::Heatmap {
        title: "confusion".into(),
        rows: 4,
        cols: 4,
        values,
        row_labels: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        col_labels: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        overlay: vec![(0.0, 1.0, 1)],
        legend: vec![],
    };
    snapshot("heatmap", &render(&f, Style::plain()));
}

#[test]
fn image_grid_plain_and_colour() {
    let disc = |r: f64| Image {
        height: 8,
        width: 8,
        pixels: (0..64)
            .map(|i| {
                if (((i / 8) as f64 - 3.5).powi(2) + ((i % 8) as f64 - 3.5).powi(2)).sqrt() < r {
                    1.0
                } else {
                    0.0
                }
            })
            .collect(),
        label: format!("r{r}"),
    };
    let f = Figure::Images {
        title: "discs".into(),
        images: vec![disc(2.0), disc(3.0), disc(4.0)],
        columns: 2,
    };
    snapshot("images", &render(&f, Style::plain()));
    let coloured = render(
        &f,
        Style {
            color: true,
            ..Style::plain()
        },
    );
    // Half-blocks with 24-bit foreground (top pixel) and background (bottom pixel).
    assert!(coloured.contains("\x1b[38;2;255;255;255m\x1b[48;2;255;255;255m▀"));
    assert_eq!(coloured.matches('▀').count(), 3 * 8 * 4);
}

#[test]
fn prose() {
    let md = "# Gradient descent\n\nWe follow the **negative gradient** with a step `lr`,\nwhich is *small*.\n\n- first point\n- second point\n\n```\nw = w - lr * g\n```\n";
    snapshot("prose", &markdown::to_terminal(md, false, 40));
    let html = markdown::to_html(md);
    assert!(
        html.contains("<h1>Gradient descent</h1>")
            && html.contains("<b>negative gradient</b>")
            && html.contains("<code>lr</code>")
            && html.contains("<li>first point</li>")
            && html.contains("<pre>w = w - lr * g\n</pre>"),
        "{html}"
    );
}

#[test]
fn list_items_wrapped_over_lines_stay_one_item() {
    let md = "Tricks:\n\n- **subsampling**: a frequent word\n  is dropped at random;\n- the rate decays.\n\nAfter.";
    let text = markdown::to_terminal(md, false, 80);
    assert!(
        text.contains(
            "  • subsampling: a frequent word is dropped at random;\n  • the rate decays."
        ),
        "{text}"
    );
    let html = markdown::to_html(md);
    assert!(
        html.contains("<li><b>subsampling</b>: a frequent word is dropped at random;</li>"),
        "{html}"
    );
}

#[test]
fn scatter_points_carry_names() {
    let fig = Figure::Scatter {
        title: "words".into(),
        points: vec![(0.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
        classes: vec![0, 1, 1],
        labels: vec![],
        names: vec!["king".into(), "queen".into(), "man".into()],
    };
    let text = render(&fig, Style::plain());
    for name in ["king", "man"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    // The rightmost point's name runs off the canvas and is cut, never wrapped.
    assert!(!text.contains("queen"), "{text}");
    let svg = notebook::render::svg::render(&fig);
    assert!(svg.contains(">queen</text>"), "{svg}");
}
