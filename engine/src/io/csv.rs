//! Numeric CSV files with a header row (the format of the shipped data sets): every field a number,
//! no quoting. Errors name the file, the line and the column.

use std::path::Path;

use crate::data::Dataset;
use crate::error::{bail, Result};
use crate::tensor::Tensor;

/// A numeric table: column names and the values, `[rows, columns]`.
#[derive(Clone, Debug)]
pub struct Table {
    pub columns: Vec<String>,
    pub values: Tensor,
}

/// Parses CSV text (a header row, then rows of numbers). `source` names it in errors.
pub fn parse_csv(text: &str, source: &str) -> Result<Table> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!(
            "load_csv",
            "{source} is empty: expected a header row and data"
        )
    };
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != columns.len() {
            bail!(
                "load_csv",
                "{source} line {}: {} fields, but the header has {} columns",
                i + 1,
                fields.len(),
                columns.len()
            );
        }
        for (c, f) in fields.iter().enumerate() {
            match f.trim().parse::<f32>() {
                Ok(v) => values.push(v),
                Err(_) => bail!(
                    "load_csv",
                    "{source} line {}, column `{}`: `{}` is not a number",
                    i + 1,
                    columns[c],
                    f.trim()
                ),
            }
        }
        rows += 1;
    }
    if rows == 0 {
        bail!("load_csv", "{source} has a header but no data rows");
    }
    Ok(Table {
        values: Tensor::from_vec(values, [rows, columns.len()])?,
        columns,
    })
}

/// Reads a CSV file (optionally `.gz`).
pub fn load_csv(path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    let bytes = super::read_maybe_gz("load_csv", path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        crate::Error::new("load_csv", format!("{} is not UTF-8 text", path.display()))
    })?;
    parse_csv(&text, &path.display().to_string())
}

impl Table {
    /// The index of a column by name.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        match self.columns.iter().position(|c| c == name) {
            Some(i) => Ok(i),
            None => bail!(
                "Table",
                "no column `{name}`; the columns are {}",
                self.columns.join(", ")
            ),
        }
    }

    /// Splits off the target column: features `[N, columns - 1]` and targets `[N]`.
    pub fn into_dataset(self, target: &str) -> Result<Dataset> {
        let t = self.column_index(target)?;
        let n = self.columns.len();
        let keep: Vec<usize> = (0..n).filter(|&c| c != t).collect();
        let x = self.values.index_select(1, &keep)?;
        let y = self.values.select(1, t)?;
        Dataset::new(x, y)
    }
}
