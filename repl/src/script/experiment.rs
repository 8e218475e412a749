//! Experiments from scripts: the TensorFlow-Playground-like lab (`playground`) and parameter sweeps
//! (`sweep`) whose results come back as a table and a CSV file.

use engine::data::synthetic;
use engine::data::Dataset;
use engine::nn::{Activation, Linear, Module, Sequential};
use engine::optim::Optimizer;
use engine::train::{self, Control, Event, FitConfig, Loss, Metric};
use engine::Tensor;
use rhai::{Array, Dynamic, Engine, FnPtr, Map, NativeCallContext, FLOAT, INT};

use super::{err, fail, interrupted, opt_num, usizes, Output, RResult, SharedHost};
use crate::render::Figure;

/// Grid resolution of the decision-boundary map.
const GRID: usize = 40;
/// The Playground's input square is [-6, 6]².
const EXTENT: f32 = 6.0;

fn strings(o: &Map, key: &str, default: &[&str]) -> Vec<String> {
    match o.get(key).and_then(|v| v.clone().try_cast::<Array>()) {
        Some(a) => a.iter().map(|x| x.to_string()).collect(),
        None => default.iter().map(|s| s.to_string()).collect(),
    }
}

fn text(o: &Map, key: &str, default: &str) -> String {
    o.get(key)
        .map_or_else(|| default.to_string(), |v| v.to_string())
}

/// The grid's points `[GRID², 2]`, top row first (y from +6 down), left to right.
fn grid_points() -> Tensor {
    let mut v = Vec::with_capacity(GRID * GRID * 2);
    for r in 0..GRID {
        for c in 0..GRID {
            let x = -EXTENT + 2.0 * EXTENT * c as f32 / (GRID - 1) as f32;
            let y = EXTENT - 2.0 * EXTENT * r as f32 / (GRID - 1) as f32;
            v.extend([x, y]);
        }
    }
    Tensor::from_vec(v, [GRID * GRID, 2]).expect("the grid has GRID² points")
}

/// The model's output over the input square, with the test points on top.
fn boundary(
    model: &dyn Module,
    feats: &[String],
    grid: &Tensor,
    test_points: &Tensor,
    test_y: &Tensor,
    regression: bool,
    title: String,
) -> engine::Result<Figure> {
    let out = train::predict(model, &synthetic::features(grid, feats)?, 4096)?;
    let values = if regression { out } else { out.sigmoid() };
    let p = test_points.to_vec();
    let y = test_y.to_vec();
    let overlay = p
        .chunks(2)
        .zip(y)
        .map(|(xy, c)| {
            (
                ((xy[0] + EXTENT) / (2.0 * EXTENT)) as f64,
                ((xy[1] + EXTENT) / (2.0 * EXTENT)) as f64,
                usize::from(c > 0.5 || (regression && c > 0.0)),
            )
        })
        .collect();
    Ok(Figure::Heatmap {
        title,
        rows: GRID,
        cols: GRID,
        values: values.to_vec().into_iter().map(f64::from).collect(),
        row_labels: Vec::new(),
        col_labels: Vec::new(),
        overlay,
        legend: vec!["class 0".into(), "class 1".into()],
    })
}

fn playground(host: &SharedHost, o: &Map) -> RResult<Map> {
    let name = text(o, "data", "circle");
    let n = opt_num(o, "n", 400.0)?;
    if !(2.0..=1e6).contains(&n) {
        return fail("playground: n (the number of points) must be between 2 and 1,000,000");
    }
    let n = n as usize;
    let seed = opt_num(o, "seed", 0.0)? as u64;
    let regression = synthetic::is_regression(&name);
    let all = synthetic::playground(&name, n, opt_num(o, "noise", 0.0)?, seed).map_err(err)?;
    let ratio = opt_num(o, "train_ratio", 0.5)? as f32;
    if !(0.05..=0.95).contains(&ratio) {
        return fail("playground: train_ratio must be between 0.05 and 0.95");
    }
    let parts = all.split(&[ratio, 1.0 - ratio], seed).map_err(err)?;
    let feats = strings(o, "features", &["x1", "x2"]);
    let featurise = |d: &Dataset| -> RResult<Dataset> {
        Dataset::new(synthetic::features(&d.x, &feats).map_err(err)?, d.y.clone()).map_err(err)
    };
    let (train_set, test_set) = (featurise(&parts[0])?, featurise(&parts[1])?);
    let hidden = match o.get("hidden").and_then(|v| v.clone().try_cast::<Array>()) {
        Some(a) => usizes(&a, "hidden")?,
        None => vec![4, 2],
    };
    if hidden.iter().any(|&h| h == 0 || h > 256) || hidden.len() > 8 {
        return fail("playground: hidden layers take 1 to 256 neurons each, at most 8 layers");
    }
    let act = Activation::from_name(&text(o, "activation", "tanh")).map_err(err)?;
    engine::manual_seed(seed);
    let mut model = Sequential::new();
    let mut width = feats.len();
    for &h in &hidden {
        model = model.layer(Linear::new(width, h)).layer(act);
        width = h;
    }
    model = model.layer(Linear::new(width, 1));
    let lr = opt_num(o, "lr", 0.03)? as f32;
    let mut opt = match text(o, "optimizer", "adam").as_str() {
        "sgd" => Optimizer::sgd(model.named_parameters(), lr, 0.0),
        "momentum" => Optimizer::sgd(model.named_parameters(), lr, 0.9),
        _ => Optimizer::adam(model.named_parameters(), lr),
    }
    .map_err(err)?;
    let rate = opt_num(o, "reg_rate", 0.0)? as f32;
    let (l1, l2) = match text(o, "regularization", "none").as_str() {
        "l1" | "L1" => (rate, 0.0),
        "l2" | "L2" => (0.0, rate),
        "none" => (0.0, 0.0),
        other => {
            return fail(format!(
                "playground: regularization is none, l1 or l2, not `{other}`"
            ))
        }
    };
    let loss = if regression {
        Loss::Mse
    } else {
        Loss::BceWithLogits
    };
    let epochs = opt_num(o, "epochs", 100.0)? as usize;
    let cfg = FitConfig {
        epochs,
        batch_size: opt_num(o, "batch_size", 10.0)?.max(1.0) as usize,
        seed,
        metrics: if regression {
            vec![]
        } else {
            vec![Metric::Accuracy]
        },
        l1,
        l2,
        shards: 1,
        ..Default::default()
    };
    let draw = o.get("draw").is_none_or(|v| v.as_bool().unwrap_or(true));
    let grid = grid_points();
    let every = (epochs / 25).max(1);
    let mut observe = |ev: &Event| -> Control {
        if let (true, Event::Epoch { epoch, logs }) = (draw, ev) {
            if epoch % every == 0 {
                let title = format!(
                    "{name}: epoch {}, train loss {:.3}, test loss {:.3}",
                    epoch + 1,
                    logs["loss"],
                    logs.get("val_loss").copied().unwrap_or(f64::NAN)
                );
                if let Ok(f) = boundary(
                    &model,
                    &feats,
                    &grid,
                    &parts[1].x,
                    &parts[1].y,
                    regression,
                    title,
                ) {
                    host.borrow_mut().frame(&f);
                }
            }
        }
        if interrupted() {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let h = train::fit(
        &model,
        &mut opt,
        &loss,
        &train_set,
        Some(&test_set),
        &cfg,
        &mut observe,
    )
    .map_err(err)?;
    let metrics = if regression {
        vec![]
    } else {
        vec![Metric::Accuracy]
    };
    let tr = train::evaluate(&model, &train_set, &loss, &metrics, 4096).map_err(err)?;
    let te = train::evaluate(&model, &test_set, &loss, &metrics, 4096).map_err(err)?;
    if draw {
        let mut title = format!(
            "{name}, {} hidden {:?}, features {}: train loss {:.3}, test loss {:.3}",
            act.describe(),
            hidden,
            feats.join(" "),
            tr["loss"],
            te["loss"]
        );
        if let Some(a) = te.get("accuracy") {
            title.push_str(&format!(", test accuracy {:.1}%", a * 100.0));
        }
        let f = boundary(
            &model,
            &feats,
            &grid,
            &parts[1].x,
            &parts[1].y,
            regression,
            title,
        )
        .map_err(err)?;
        host.borrow_mut().emit(Output::Figure(f));
    }
    let mut m = Map::new();
    for (k, v) in tr {
        m.insert(format!("train_{k}").into(), Dynamic::from_float(v));
    }
    for (k, v) in te {
        m.insert(format!("test_{k}").into(), Dynamic::from_float(v));
    }
    m.insert("epochs".into(), Dynamic::from_int(h.epochs() as INT));
    m.insert(
        "params".into(),
        Dynamic::from_int(model.num_parameters() as INT),
    );
    for (k, v) in &h.series {
        m.insert(
            k.as_str().into(),
            Dynamic::from_array(v.iter().map(|&x| Dynamic::from_float(x)).collect()),
        );
    }
    if h.interrupted {
        return fail("training interrupted by Ctrl-C");
    }
    Ok(m)
}

/// Every combination of the grid's values, in key order, as settings maps.
fn combinations(grid: &Map) -> RResult<Vec<Map>> {
    let mut out = vec![Map::new()];
    for (k, v) in grid {
        let values = v
            .clone()
            .try_cast::<Array>()
            .unwrap_or_else(|| vec![v.clone()]);
        if values.is_empty() {
            return fail(format!("sweep: `{k}` has no values"));
        }
        out = out
            .into_iter()
            .flat_map(|m| {
                values.iter().map(move |x| {
                    let mut m = m.clone();
                    m.insert(k.clone(), x.clone());
                    m
                })
            })
            .collect();
    }
    Ok(out)
}

fn cell(v: &Dynamic) -> String {
    if let Ok(f) = v.as_float() {
        format!("{f:.4}")
    } else {
        crate::session::show_value(v).unwrap_or_default()
    }
}

fn sweep(
    ctx: &NativeCallContext,
    host: &SharedHost,
    grid: &Map,
    f: &FnPtr,
    o: &Map,
) -> RResult<Array> {
    let mut rows: Vec<Map> = Vec::new();
    for settings in combinations(grid)? {
        if interrupted() {
            return fail("sweep interrupted by Ctrl-C");
        }
        let result: Dynamic = f.call_within_context(ctx, (settings.clone(),))?;
        let mut row = settings;
        match result.try_cast::<Map>() {
            Some(r) => row.extend(r),
            None => {
                return fail(
                    "sweep: the function must return a map of results, e.g. #{val_accuracy: acc}",
                )
            }
        }
        rows.push(row);
    }
    let mut columns: Vec<String> = grid.keys().map(|k| k.to_string()).collect();
    for r in &rows {
        for k in r.keys() {
            if !columns.iter().any(|c| c == k.as_str()) {
                columns.push(k.to_string());
            }
        }
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| r.get(c.as_str()).map(cell).unwrap_or_default())
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            table
                .iter()
                .map(|row| row[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut text = line(&columns);
    text.push('\n');
    text.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1)));
    for row in &table {
        text.push('\n');
        text.push_str(&line(row));
    }
    host.borrow_mut().emit(Output::Text(text));
    if let Some(path) = o.get("csv") {
        let target = host.borrow().writable(&path.to_string())?;
        let mut csv = columns.join(",");
        for row in &table {
            csv.push('\n');
            csv.push_str(&row.join(","));
        }
        csv.push('\n');
        engine::io::atomic::write_atomic(&target, csv.as_bytes()).map_err(err)?;
    }
    Ok(rows.into_iter().map(Dynamic::from_map).collect())
}

/// Registers `playground`, `playground_data`, `features` and `sweep`.
pub fn register(e: &mut Engine, host: SharedHost) {
    let h = host.clone();
    e.register_fn("playground", move |o: Map| playground(&h, &o));
    e.register_fn(
        "playground_data",
        |name: &str, n: INT, noise: FLOAT, seed: INT| -> RResult<Dataset> {
            if !(2..=1_000_000).contains(&n) {
                return fail(
                    "playground_data: n (the number of points) must be between 2 and 1,000,000",
                );
            }
            synthetic::playground(name, n as usize, noise, seed as u64).map_err(err)
        },
    );
    e.register_fn(
        "features",
        |points: Tensor, names: Array| -> RResult<Tensor> {
            let names: Vec<String> = names.iter().map(|x| x.to_string()).collect();
            synthetic::features(&points, &names).map_err(err)
        },
    );
    let h = host.clone();
    e.register_fn(
        "sweep",
        move |ctx: NativeCallContext, grid: Map, f: FnPtr| sweep(&ctx, &h, &grid, &f, &Map::new()),
    );
    let h = host;
    e.register_fn(
        "sweep",
        move |ctx: NativeCallContext, grid: Map, f: FnPtr, o: Map| sweep(&ctx, &h, &grid, &f, &o),
    );
}
