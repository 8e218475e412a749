//! Matrix multiplication `C = alpha * A·B + beta * C` on strided f32 matrices.
//!
//! For now this delegates to the `matrixmultiply` crate (a BLIS-style kernel with run-time SIMD
//! selection); the safe wrapper below checks that every element the strides reach lies inside its
//! slice, so the crate's raw-pointer interface cannot read or write out of bounds. Transposed
//! operands are expressed by swapping strides, never by copying.

/// A read-only matrix view: `data[r * row_stride + c * col_stride]` is element `(r, c)`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with no padding.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view (strides swapped).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn reach(&self) -> usize {
        reach(self.rows, self.cols, self.row_stride, self.col_stride)
    }
}

/// A writable row-major matrix view with the given row stride.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major matrix with no padding.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> MatMut<'a> {
        MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }
}

/// One past the largest offset a `rows`×`cols` view with these strides touches (0 when empty).
fn reach(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `c = alpha * a·b + beta * c`. When `beta == 0`, `c` is only written, never read (NaN in it is
/// harmless).
///
/// # Panics
/// If the shapes do not chain (`a.cols != b.rows`, or `c` is not `a.rows`×`b.cols`) or a view's
/// strides reach outside its slice. Callers check shapes first and report errors themselves; a
/// panic here is a bug in the engine.
pub fn sgemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    assert!(
        a.cols == b.rows && c.rows == a.rows && c.cols == b.cols,
        "sgemm: shapes do not chain"
    );
    assert!(
        a.reach() <= a.data.len() && b.reach() <= b.data.len(),
        "sgemm: operand strides reach outside the slice"
    );
    assert!(
        reach(c.rows, c.cols, c.row_stride, 1) <= c.data.len(),
        "sgemm: output strides reach outside the slice"
    );
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // A·B is the zero matrix; matrixmultiply handles this, but say what happens.
        for r in 0..m {
            for v in &mut c.data[r * c.row_stride..r * c.row_stride + n] {
                *v = if beta == 0.0 { 0.0 } else { beta * *v };
            }
        }
        return;
    }
    // SAFETY: the asserts above guarantee that every (row, col) index below each view's extents maps
    // to an offset inside its slice, which is what `sgemm` dereferences; `c` is borrowed mutably, so
    // it cannot alias `a` or `b`. Strides fit in isize because they index slices no longer than
    // isize::MAX elements.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.data.as_mut_ptr(),
            c.row_stride as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0.0;
                for p in 0..a.cols {
                    s += a.data[i * a.row_stride + p * a.col_stride]
                        * b.data[p * b.row_stride + j * b.col_stride];
                }
                out[i * b.cols + j] = s;
            }
        }
        out
    }

    #[test]
    fn transposed_operands_and_beta() {
        let a: Vec<f32> = (0..6).map(|x| x as f32).collect(); // 2x3
        let b: Vec<f32> = (0..12).map(|x| x as f32 * 0.5).collect(); // 3x4
        let bt = MatRef::row_major(&b, 3, 4);
        let mut c = vec![f32::NAN; 8];
        sgemm(
            1.0,
            MatRef::row_major(&a, 2, 3),
            bt,
            0.0,
            MatMut::row_major(&mut c, 2, 4),
        );
        assert_eq!(c, naive(MatRef::row_major(&a, 2, 3), bt));
        // (aᵀ)ᵀ·b with a stored transposed, accumulating into c.
        let at: Vec<f32> = vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]; // 3x2 = aᵀ
        let before = c.clone();
        sgemm(
            2.0,
            MatRef::row_major(&at, 3, 2).t(),
            bt,
            1.0,
            MatMut::row_major(&mut c, 2, 4),
        );
        for (x, y) in c.iter().zip(before) {
            assert_eq!(*x, 3.0 * y);
        }
    }
}
