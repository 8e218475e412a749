//! Plotting from scripts: line charts, scatter plots, heat maps, image grids.

use engine::Tensor;
use rhai::{Array, Dynamic, Engine, Map};

use super::{err, fail, floats, Output, RResult, SharedHost};
use crate::render::{Figure, Image, Series};

fn text(m: &Map, key: &str) -> String {
    m.get(key).map(|v| v.to_string()).unwrap_or_default()
}

fn series_from(name: &str, v: &Dynamic) -> RResult<Series> {
    let ys: Vec<f64> = if let Some(t) = v.clone().try_cast::<Tensor>() {
        t.to_vec().into_iter().map(f64::from).collect()
    } else if let Some(a) = v.clone().try_cast::<Array>() {
        if a.first().is_some_and(|p| p.is_array()) {
            // A list of [x, y] pairs.
            let pts = a
                .iter()
                .map(|p| {
                    p.clone().try_cast::<Array>().map_or_else(
                        || fail("plot: mixed points and numbers"),
                        |xy| floats(&xy, "plot"),
                    )
                })
                .collect::<RResult<Vec<_>>>()?;
            return Ok(Series {
                name: name.into(),
                points: pts
                    .into_iter()
                    .filter(|p| p.len() == 2)
                    .map(|p| (p[0], p[1]))
                    .collect(),
            });
        }
        floats(&a, "plot")?
    } else {
        return fail(format!(
            "plot: series `{name}` must be a list of numbers or a tensor, got a {}",
            v.type_name()
        ));
    };
    Ok(Series {
        name: name.into(),
        points: ys
            .into_iter()
            .enumerate()
            .map(|(i, y)| ((i + 1) as f64, y))
            .collect(),
    })
}

fn lines(data: &Dynamic, o: &Map) -> RResult<Figure> {
    let series = if let Some(m) = data.clone().try_cast::<Map>() {
        // A map of series (e.g. a training history): skip entries that are not sequences.
        m.iter()
            .filter(|(_, v)| v.is_array() || v.is::<Tensor>())
            .filter(|(k, _)| *k != "lr" && *k != "seconds")
            .map(|(k, v)| series_from(k, v))
            .collect::<RResult<Vec<_>>>()?
    } else {
        vec![series_from(&text(o, "name"), data)?]
    };
    if series.iter().all(|s| s.points.is_empty()) {
        return fail("plot: nothing to draw");
    }
    Ok(Figure::Lines {
        title: text(o, "title"),
        series,
        x_label: text(o, "x_label"),
        y_label: text(o, "y_label"),
        log_y: o.get("log_y").is_some_and(|v| v.as_bool().unwrap_or(false)),
    })
}

fn labels(o: &Map) -> Vec<String> {
    names(o, "labels")
}

/// The option `key` as a list of strings (empty when absent).
fn names(o: &Map, key: &str) -> Vec<String> {
    o.get(key)
        .and_then(|v| v.clone().try_cast::<Array>())
        .map(|a| a.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default()
}

fn scatter(points: &Tensor, classes: &Tensor, o: &Map) -> RResult<Figure> {
    if points.rank() != 2 || points.dims()[1] != 2 {
        return fail(format!(
            "scatter: points must be [n, 2], got {}",
            points.shape()
        ));
    }
    let p = points.to_vec();
    let c = classes.to_indices("scatter", usize::MAX).map_err(err)?;
    if c.len() != points.dims()[0] {
        return fail(format!(
            "scatter: {} points but {} classes",
            points.dims()[0],
            c.len()
        ));
    }
    Ok(Figure::Scatter {
        title: text(o, "title"),
        points: p.chunks(2).map(|x| (x[0] as f64, x[1] as f64)).collect(),
        classes: c,
        labels: labels(o),
        names: names(o, "names"),
    })
}

fn heatmap(t: &Tensor, o: &Map) -> RResult<Figure> {
    if t.rank() != 2 {
        return fail(format!("heatmap: needs a 2-D tensor, got {}", t.shape()));
    }
    let overlay = match (
        o.get("points").and_then(|v| v.clone().try_cast::<Tensor>()),
        o.get("classes")
            .and_then(|v| v.clone().try_cast::<Tensor>()),
    ) {
        (Some(p), Some(c)) if p.rank() == 2 && p.dims()[1] == 2 => {
            let cls = c.to_indices("heatmap", usize::MAX).map_err(err)?;
            p.to_vec()
                .chunks(2)
                .zip(cls)
                .map(|(xy, k)| (xy[0] as f64, xy[1] as f64, k))
                .collect()
        }
        _ => Vec::new(),
    };
    let names = |k: &str| names(o, k);
    Ok(Figure::Heatmap {
        title: text(o, "title"),
        rows: t.dims()[0],
        cols: t.dims()[1],
        values: t.to_vec().into_iter().map(f64::from).collect(),
        row_labels: names("row_labels"),
        col_labels: names("col_labels"),
        overlay,
        legend: labels(o),
    })
}

fn images(t: &Tensor, o: &Map) -> RResult<Figure> {
    let (n, h, w) = match t.dims() {
        [n, h, w] => (*n, *h, *w),
        [n, d] => {
            let side = (*d as f64).sqrt() as usize;
            if side * side != *d {
                return fail(format!("show_images: rows of {d} values are not square images; pass [n, height, width]"));
            }
            (*n, side, side)
        }
        _ => {
            return fail(format!(
                "show_images: expects [n, height, width] or [n, pixels], got {}",
                t.shape()
            ))
        }
    };
    let data = t.to_vec();
    let (lo, hi) = crate::render::range(data.iter().map(|&v| v as f64));
    let names = labels(o);
    let imgs = (0..n.min(64))
        .map(|i| Image {
            height: h,
            width: w,
            pixels: data[i * h * w..(i + 1) * h * w]
                .iter()
                .map(|&v| ((v as f64 - lo) / (hi - lo)) as f32)
                .collect(),
            label: names.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    let columns = o
        .get("columns")
        .and_then(|v| v.as_int().ok())
        .unwrap_or(8)
        .max(1) as usize;
    Ok(Figure::Images {
        title: text(o, "title"),
        images: imgs,
        columns,
    })
}

/// Registers the plotting functions; each draws at once and is kept for the HTML export. With
/// `animate: true` in the options a figure is a frame of an animation instead (see `Host::frame`):
/// redrawn in place in an interactive terminal, skipped otherwise.
pub fn register(e: &mut Engine, host: SharedHost) {
    fn show(h: &SharedHost, f: RResult<Figure>, o: &Map) -> RResult<()> {
        let f = f?;
        if o.get("animate")
            .is_some_and(|v| v.as_bool().unwrap_or(false))
        {
            h.borrow_mut().frame(&f);
        } else {
            h.borrow_mut().emit(Output::Figure(f));
        }
        Ok(())
    }
    let none = Map::new();
    let (h, n) = (host.clone(), none.clone());
    e.register_fn("plot", move |d: Dynamic| show(&h, lines(&d, &n), &n));
    let h = host.clone();
    e.register_fn("plot", move |d: Dynamic, o: Map| {
        show(&h, lines(&d, &o), &o)
    });
    let (h, n) = (host.clone(), none.clone());
    e.register_fn("scatter", move |p: Tensor, c: Tensor| {
        show(&h, scatter(&p, &c, &n), &n)
    });
    let h = host.clone();
    e.register_fn("scatter", move |p: Tensor, c: Tensor, o: Map| {
        show(&h, scatter(&p, &c, &o), &o)
    });
    let (h, n) = (host.clone(), none.clone());
    e.register_fn("heatmap", move |t: Tensor| show(&h, heatmap(&t, &n), &n));
    let h = host.clone();
    e.register_fn("heatmap", move |t: Tensor, o: Map| {
        show(&h, heatmap(&t, &o), &o)
    });
    let (h, n) = (host.clone(), none);
    e.register_fn("show_images", move |t: Tensor| show(&h, images(&t, &n), &n));
    let h = host;
    e.register_fn("show_images", move |t: Tensor, o: Map| {
        show(&h, images(&t, &o), &o)
    });
}
