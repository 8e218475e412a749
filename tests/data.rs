//! Data sets and loaders: splits, batches, standardisation, one-hot, CSV and IDX files and their
//! errors.

use engine::data::{one_hot, Dataset, Standardizer};
use engine::io::csv::{load_csv, parse_csv};
use engine::io::idx::{parse_images, parse_labels};
use engine::Tensor;

fn toy(n: usize) -> Dataset {
    let x = Tensor::from_vec((0..n * 2).map(|v| v as f32).collect(), [n, 2]).unwrap();
    let y = Tensor::from_vec((0..n).map(|v| (v % 3) as f32).collect(), [n]).unwrap();
    Dataset::new(x, y).unwrap()
}

#[test]
fn split_partitions_the_samples() {
    let d = toy(10);
    let parts = d.split(&[0.7, 0.2, 0.1], 5).unwrap();
    assert_eq!(
        parts.iter().map(Dataset::len).collect::<Vec<_>>(),
        vec![7, 2, 1]
    );
    let mut seen: Vec<f32> = parts
        .iter()
        .flat_map(|p| p.x.select(1, 0).unwrap().to_vec())
        .collect();
    seen.sort_by(f32::total_cmp);
    assert_eq!(seen, (0..10).map(|i| (2 * i) as f32).collect::<Vec<_>>());
    // Same seed, same split; rows stay paired with their targets.
    let again = d.split(&[0.7, 0.2, 0.1], 5).unwrap();
    assert_eq!(again[0].x.to_vec(), parts[0].x.to_vec());
    for p in &parts {
        let xs = p.x.select(1, 0).unwrap().to_vec();
        for (x, y) in xs.iter().zip(p.y.to_vec()) {
            assert_eq!(((*x as usize) / 2 % 3) as f32, y);
        }
    }
    assert!(d.split(&[0.5, 0.6], 0).is_err());
}

#[test]
fn batches_cover_every_sample_once() {
    let d = toy(10);
    let b = d.batches(4, Some(1)).unwrap();
    assert_eq!(
        b.iter().map(Dataset::len).collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    let mut ids: Vec<f32> = b
        .iter()
        .flat_map(|p| p.x.select(1, 0).unwrap().to_vec())
        .collect();
    assert_ne!(
        ids,
        (0..10).map(|i| (2 * i) as f32).collect::<Vec<_>>(),
        "shuffled"
    );
    ids.sort_by(f32::total_cmp);
    assert_eq!(ids, (0..10).map(|i| (2 * i) as f32).collect::<Vec<_>>());
    assert_eq!(
        d.batches(4, None).unwrap()[0].x.to_vec(),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    );
}

#[test]
fn standardizer_uses_training_statistics() {
    let train = Tensor::from_vec(vec![1.0, 10.0, 3.0, 10.0], [2, 2]).unwrap();
    let s = Standardizer::fit(&train).unwrap();
    assert_eq!(
        s.transform(&train).unwrap().to_vec(),
        vec![-1.0, 0.0, 1.0, 0.0]
    );
    let test = Tensor::from_vec(vec![5.0, 12.0], [1, 2]).unwrap();
    assert_eq!(s.transform(&test).unwrap().to_vec(), vec![3.0, 2.0]); // constant column: std 1
    assert_eq!(
        s.inverse(&s.transform(&test).unwrap()).unwrap().to_vec(),
        vec![5.0, 12.0]
    );
}

#[test]
fn one_hot_rows() {
    let y = Tensor::from_vec(vec![2.0, 0.0], [2]).unwrap();
    assert_eq!(
        one_hot(&y, 3).unwrap().to_vec(),
        vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    );
    assert_eq!(
        one_hot(&y, 2).unwrap_err().to_string(),
        "one_hot: index 2 is not a whole number in 0..2"
    );
}

#[test]
fn shipped_csv_files_load() {
    let root = env!("CARGO_MANIFEST_DIR");
    let iris = load_csv(format!("{root}/tutorials/data/iris.csv"))
        .unwrap()
        .into_dataset("label")
        .unwrap();
    assert_eq!((iris.x.dims(), iris.y.dims()), (&[150, 4][..], &[150][..]));
    let digits = load_csv(format!("{root}/tutorials/data/digits_8x8.csv"))
        .unwrap()
        .into_dataset("label")
        .unwrap();
    assert_eq!(digits.x.dims(), &[1797, 64]);
}

#[test]
fn csv_errors_name_the_line_and_column() {
    let e = |t: &str| parse_csv(t, "t.csv").unwrap_err().to_string();
    assert_eq!(
        e(""),
        "load_csv: t.csv is empty: expected a header row and data"
    );
    assert_eq!(e("a,b\n"), "load_csv: t.csv has a header but no data rows");
    assert_eq!(
        e("a,b\n1,2\n3\n"),
        "load_csv: t.csv line 3: 1 fields, but the header has 2 columns"
    );
    assert_eq!(
        e("a,b\n1,x\n"),
        "load_csv: t.csv line 2, column `b`: `x` is not a number"
    );
    let missing = load_csv("/nonexistent/file.csv").unwrap_err().to_string();
    assert!(
        missing.starts_with("load_csv: cannot read /nonexistent/file.csv:"),
        "{missing}"
    );
    let t = parse_csv("a,b\n1,2\n", "t.csv").unwrap();
    assert_eq!(
        t.into_dataset("c").unwrap_err().to_string(),
        "Table: no column `c`; the columns are a, b"
    );
}

#[test]
fn idx_files_and_their_errors() {
    let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1];
    img.extend([0u8, 255, 7, 9]);
    let t = parse_images(&img, "i").unwrap();
    assert_eq!(
        (t.dims(), t.to_vec()),
        (&[2, 2, 1][..], vec![0.0, 255.0, 7.0, 9.0])
    );
    assert!(parse_images(&img[..19], "i")
        .unwrap_err()
        .to_string()
        .contains("declares 2 images of 2x1 but holds 3 bytes"));
    assert!(parse_images(&[1, 2, 3], "i")
        .unwrap_err()
        .to_string()
        .contains("is not an IDX image file"));
    let lab = [0, 0, 8, 1, 0, 0, 0, 2, 4, 5];
    assert_eq!(parse_labels(&lab, "l").unwrap().to_vec(), vec![4.0, 5.0]);
    assert!(parse_labels(&lab[..9], "l").is_err());
}
