//! Printing tensors the way PyTorch does: `tensor([[1.0000, 2.0000], ...], shape=[2, 2])`.
//!
//! Like PyTorch, a tensor of more than 1,000 elements is summarised: each axis longer than 6 shows
//! its first and last 3 entries around a `...`. Numbers use 4 decimals, or scientific notation when
//! the magnitudes shown span more than 1e8 or leave the range [1e-4, 1e8).

use std::fmt;

use super::Tensor;

const SUMMARY_THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;

enum Style {
    Fixed,
    Scientific,
}

fn choose_style(values: &[f32]) -> Style {
    let finite: Vec<f32> = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v != 0.0)
        .map(f32::abs)
        .collect();
    if finite.is_empty() {
        return Style::Fixed;
    }
    let max = finite.iter().copied().fold(f32::MIN, f32::max);
    let min = finite.iter().copied().fold(f32::MAX, f32::min);
    if max >= 1e8 || min < 1e-4 || max / min > 1e8 {
        Style::Scientific
    } else {
        Style::Fixed
    }
}

fn format_value(v: f32, style: &Style) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    match style {
        Style::Fixed => format!("{v:.4}"),
        Style::Scientific => {
            // Rust prints `1.0000e-6`; PyTorch prints `1.0000e-06`.
            let s = format!("{v:.4e}");
            match s.split_once('e') {
                Some((mantissa, exp)) => {
                    let e: i32 = exp.parse().unwrap_or(0);
                    format!("{mantissa}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                }
                None => s,
            }
        }
    }
}

/// The indices shown along an axis of extent `n`; `None` marks the elision.
fn shown(n: usize, summarise: bool) -> Vec<Option<usize>> {
    if summarise && n > 2 * EDGE_ITEMS {
        let mut v: Vec<Option<usize>> = (0..EDGE_ITEMS).map(Some).collect();
        v.push(None);
        v.extend((n - EDGE_ITEMS..n).map(Some));
        v
    } else {
        (0..n).map(Some).collect()
    }
}

struct Printer<'a> {
    data: &'a [f32],
    dims: &'a [usize],
    strides: Vec<usize>,
    summarise: bool,
    style: Style,
    width: usize,
}

impl Printer<'_> {
    fn visible_values(&self, axis: usize, offset: usize, out: &mut Vec<f32>) {
        if axis == self.dims.len() {
            out.push(self.data[offset]);
            return;
        }
        for i in shown(self.dims[axis], self.summarise).into_iter().flatten() {
            self.visible_values(axis + 1, offset + i * self.strides[axis], out);
        }
    }

    fn write(
        &self,
        f: &mut impl fmt::Write,
        axis: usize,
        offset: usize,
        indent: usize,
    ) -> fmt::Result {
        if axis == self.dims.len() {
            let s = format_value(self.data[offset], &self.style);
            return write!(f, "{s:>w$}", w = self.width);
        }
        write!(f, "[")?;
        let last_axis = axis + 1 == self.dims.len();
        let items = shown(self.dims[axis], self.summarise);
        for (k, item) in items.iter().enumerate() {
            if k > 0 {
                if last_axis {
                    write!(f, ", ")?;
                } else {
                    write!(f, ",")?;
                    let blank_lines = self.dims.len() - axis - 1;
                    for _ in 0..blank_lines {
                        writeln!(f)?;
                    }
                    write!(f, "{:indent$}", "", indent = indent + 1)?;
                }
            }
            match item {
                Some(i) => self.write(f, axis + 1, offset + i * self.strides[axis], indent + 1)?,
                None => write!(f, "...")?,
            }
        }
        write!(f, "]")
    }
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.data();
        let dims = self.dims();
        let strides = self.shape().strides().to_vec();
        let summarise = data.len() > SUMMARY_THRESHOLD;
        let mut p = Printer {
            data: &data,
            dims,
            strides,
            summarise,
            style: Style::Fixed,
            width: 0,
        };
        let mut visible = Vec::new();
        p.visible_values(0, 0, &mut visible);
        p.style = choose_style(&visible);
        p.width = visible
            .iter()
            .map(|&v| format_value(v, &p.style).len())
            .max()
            .unwrap_or(0);
        let mut body = String::new();
        p.write(&mut body, 0, 0, "tensor(".len())?;
        write!(f, "tensor({body}, shape={}", self.shape())?;
        if let Some(op) = self.op_name() {
            write!(f, ", grad_fn=<{op}>")?;
        } else if self.requires_grad_flag() {
            write!(f, ", requires_grad=true")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_pytorch() {
        let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, -4.5], [2, 2]).unwrap();
        assert_eq!(
            t.to_string(),
            "tensor([[ 1.0000,  2.0000],\n        [ 3.0000, -4.5000]], shape=[2, 2])"
        );
        assert_eq!(Tensor::scalar(0.5).to_string(), "tensor(0.5000, shape=[])");
        let big = Tensor::arange(0.0, 2000.0, 1.0).unwrap();
        let s = big.to_string();
        assert!(
            s.starts_with(
                "tensor([   0.0000,    1.0000,    2.0000, ..., 1997.0000, 1998.0000, 1999.0000]"
            ),
            "{s}"
        );
        let tiny = Tensor::from_vec(vec![1e-6, 1.0], [2]).unwrap();
        assert_eq!(
            tiny.to_string(),
            "tensor([1.0000e-06, 1.0000e+00], shape=[2])"
        );
    }
}
