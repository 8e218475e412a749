//! The HTML export opened in headless Chromium: every SVG figure must lay out with a real size.
//! Skipped, with a message, when Chromium is not installed (CI installs it).

use std::path::Path;
use std::process::Command;

use notebook::render::term::Style;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn exported_svgs_render_in_chromium() {
    let dir = std::env::temp_dir().join(format!("gradbook-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("tour.html");
    let tour = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tutorials/00_tour.rhai"
    ));
    let o = notebook::runner::run_file(tour, Style::plain(), 0, Some(&page));
    assert!(o.ok(), "{:?}", o.errors);
    let html = std::fs::read_to_string(&page).unwrap();
    let figures = html.matches("<svg").count();
    assert!(
        figures >= 3,
        "expected the tour's figures in the page, found {figures}"
    );
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "the export must be self-contained"
    );

    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: Chromium is not installed, so the export was not rendered (apt-get install chromium)");
        return;
    };
    // A copy of the page with a probe that records each SVG's laid-out size in the DOM.
    let probe = "<script>document.body.setAttribute('data-svg-sizes', Array.from(document.querySelectorAll('svg')).map(s => { const r = s.getBoundingClientRect(); const b = s.getBBox(); return Math.round(r.width) + 'x' + Math.round(r.height) + ':' + Math.round(b.width); }).join(' '));</script></body>";
    let probed = dir.join("probed.html");
    std::fs::write(&probed, html.replace("</body>", probe)).unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(format!("file://{}", probed.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let sizes = dom
        .split("data-svg-sizes=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| {
            panic!(
                "no probe result in the DOM; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let sizes: Vec<&str> = sizes.split_whitespace().collect();
    assert_eq!(sizes.len(), figures, "{sizes:?}");
    for s in sizes {
        let (laid_out, drawn) = s.split_once(':').unwrap();
        assert_eq!(laid_out, "560x300", "an SVG laid out at {laid_out}");
        assert!(
            drawn.parse::<u32>().unwrap() > 100,
            "an SVG whose drawing is only {drawn} px wide"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
