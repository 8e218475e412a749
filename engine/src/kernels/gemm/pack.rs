//! Packing: copying a block of A or B into the panel layout the micro-kernel streams through.
//! Transposed and strided operands are handled here, by reading with their strides, so no
//! operand is ever copied whole. Each case loops so that reads are contiguous (the writes land
//! in a small panel that stays in L1). Panels at the edges are padded with zeros.

use super::MatRef;
use crate::kernels::prefetch::prefetch;

/// Packs rows `r0..r0+mb` × columns `p0..p0+kb` of `a` into panels of `mr` rows: panel `t` holds,
/// for each `p`, the `mr` values `a[r0 + t·mr + i][p0 + p]` contiguously.
pub(crate) fn pack_a(
    a: &MatRef<'_>,
    r0: usize,
    p0: usize,
    mb: usize,
    kb: usize,
    mr: usize,
    out: &mut [f32],
) {
    let panels = mb.div_ceil(mr);
    debug_assert!(out.len() >= panels * mr * kb);
    for t in 0..panels {
        let rows = mr.min(mb - t * mr);
        let panel = &mut out[t * mr * kb..(t + 1) * mr * kb];
        if rows < mr {
            panel.fill(0.0);
        }
        let first = r0 + t * mr;
        if a.col_stride == 1 {
            // Row-major A: the panel is a transpose of the block.
            let row = |i: usize| &a.data[(first + i) * a.row_stride + p0..][..kb];
            transpose_into(row, rows, panel, mr);
        } else if a.row_stride == 1 {
            // Column-major A (a transposed view): each k step is a contiguous run of rows.
            // Full panels take fixed-size copies (a few vector moves) rather than a call to
            // memmove per k step, which costs more than the copy at these sizes.
            match (rows == mr, mr) {
                (true, 12) => copy_runs::<12>(a, first, p0, panel),
                (true, 6) => copy_runs::<6>(a, first, p0, panel),
                (true, 4) => copy_runs::<4>(a, first, p0, panel),
                _ => {
                    for p in 0..kb {
                        let src = &a.data[(p0 + p) * a.col_stride + first..][..rows];
                        panel[p * mr..p * mr + rows].copy_from_slice(src);
                    }
                }
            }
        } else {
            for i in 0..rows {
                for p in 0..kb {
                    panel[p * mr + i] =
                        a.data[(first + i) * a.row_stride + (p0 + p) * a.col_stride];
                }
            }
        }
    }
}

/// A full panel of a column-major A: for each k step `p`, the `MR` rows from `first` of column
/// `p0 + p`, which are contiguous.
fn copy_runs<const MR: usize>(a: &MatRef<'_>, first: usize, p0: usize, panel: &mut [f32]) {
    for (p, dst) in panel.chunks_exact_mut(MR).enumerate() {
        let src = &a.data[(p0 + p) * a.col_stride + first..][..MR];
        let dst: &mut [f32; MR] = dst.try_into().expect("chunks of MR");
        *dst = src.try_into().expect("a slice of MR");
    }
}

/// Requests part `part` (of `parts`) of the cache lines that packing rows `r0..r0+rows` ×
/// columns `p0..p0+kb` of `a` will read, so that they arrive while other work runs: a panel of a
/// row-major A is `rows` short runs, a page or more apart, which the hardware prefetchers do not
/// fetch ahead. Only hints: no effect on any result, and nothing for a strided A.
pub(crate) fn prefetch_a(
    a: &MatRef<'_>,
    (r0, p0): (usize, usize),
    (rows, kb): (usize, usize),
    (part, parts): (usize, usize),
) {
    if a.col_stride == 1 {
        // Lines 16 floats apart along each row, and the run's last float (a run need not start
        // on a line).
        let per_row = kb / 16 + 1;
        let total = rows * per_row;
        for q in total * part / parts..total * (part + 1) / parts {
            let (i, l) = (q / per_row, q % per_row);
            if let Some(v) = a
                .data
                .get((r0 + i) * a.row_stride + p0 + (l * 16).min(kb - 1))
            {
                prefetch(std::slice::from_ref(v));
            }
        }
    } else if a.row_stride == 1 {
        // One run of `rows` floats per k step: its first and last.
        for p in kb * part / parts..kb * (part + 1) / parts {
            let run = (p0 + p) * a.col_stride + r0;
            for at in [run, run + rows - 1] {
                if let Some(v) = a.data.get(at) {
                    prefetch(std::slice::from_ref(v));
                }
            }
        }
    }
}

/// Packs rows `p0..p0+kb` × columns `c0..c0+nb` of `b` into panels of `nr` columns: panel `t`
/// holds, for each `p`, the `nr` values `b[p0 + p][c0 + t·nr + j]` contiguously.
pub(crate) fn pack_b(
    b: &MatRef<'_>,
    p0: usize,
    c0: usize,
    kb: usize,
    nb: usize,
    nr: usize,
    out: &mut [f32],
) {
    // The panel width as a constant, for each kernel's width.
    match nr {
        32 => pack_b_fixed::<32>(b, p0, c0, kb, nb, out),
        16 => pack_b_fixed::<16>(b, p0, c0, kb, nb, out),
        8 => pack_b_fixed::<8>(b, p0, c0, kb, nb, out),
        _ => unreachable!("panel widths are 8, 16 or 32"),
    }
}

fn pack_b_fixed<const NR: usize>(
    b: &MatRef<'_>,
    p0: usize,
    c0: usize,
    kb: usize,
    nb: usize,
    out: &mut [f32],
) {
    let nr = NR;
    let panels = nb.div_ceil(nr);
    debug_assert!(out.len() >= panels * nr * kb);
    let mut t0 = 0;
    if b.col_stride == 1 {
        // Row-major B, full panels: a strip of rows at a time, copied panel by panel. Panel by
        // panel over all kb rows would read NR floats per row, one row (a page, for a wide B)
        // apart, a pattern the hardware prefetchers do not follow; a strip of 8 rows reads 8
        // streams, each along a row. Each step is a fixed-size copy (a few vector moves).
        let full = nb / nr;
        for p in (0..kb).step_by(8) {
            let strip = 8.min(kb - p);
            for t in 0..full {
                let first = c0 + t * nr;
                let dst = &mut out[t * nr * kb + p * nr..][..strip * nr];
                for (q, dst) in dst.chunks_exact_mut(NR).enumerate() {
                    let src = &b.data[(p0 + p + q) * b.row_stride + first..][..NR];
                    let dst: &mut [f32; NR] = dst.try_into().expect("chunks of NR");
                    let src: &[f32; NR] = src.try_into().expect("a slice of NR");
                    *dst = *src;
                }
            }
        }
        t0 = full;
    }
    for t in t0..panels {
        let cols = nr.min(nb - t * nr);
        let panel = &mut out[t * nr * kb..(t + 1) * nr * kb];
        if cols < nr {
            panel.fill(0.0);
        }
        let first = c0 + t * nr;
        if b.col_stride == 1 {
            // The last, partial panel of a row-major B.
            for p in 0..kb {
                let src = &b.data[(p0 + p) * b.row_stride + first..][..cols];
                panel[p * nr..p * nr + cols].copy_from_slice(src);
            }
        } else if b.row_stride == 1 {
            // Column-major B (a transposed view, e.g. a Linear layer's Wᵀ): the panel is a
            // transpose, as for a row-major A.
            let col = |j: usize| &b.data[(first + j) * b.col_stride + p0..][..kb];
            transpose_into(col, cols, panel, nr);
        } else {
            for p in 0..kb {
                for j in 0..cols {
                    panel[p * nr + j] =
                        b.data[(p0 + p) * b.row_stride + (first + j) * b.col_stride];
                }
            }
        }
    }
}

/// Writes `out[p·stride + i] = line(i)[p]` for the `count` lines (of equal length) and every
/// `p`: the transposing part of packing. Eight lines at a time go through 8×8 register
/// transposes where the CPU has AVX (every instruction set but the portable one), then four at a
/// time through 4×4 ones; the lines left over are read one sweep each.
pub(crate) fn transpose_into<'a>(
    line: impl Fn(usize) -> &'a [f32],
    count: usize,
    out: &mut [f32],
    stride: usize,
) {
    let mut i = 0;
    if super::current_isa() != super::Isa::Portable {
        while i + 8 <= count {
            let rows = std::array::from_fn(|q| line(i + q));
            transpose8(rows, &mut out[i..], stride);
            i += 8;
        }
    }
    while i + 4 <= count {
        transpose4(
            [line(i), line(i + 1), line(i + 2), line(i + 3)],
            &mut out[i..],
            stride,
        );
        i += 4;
    }
    for i in i..count {
        for (dst, &v) in out[i..].iter_mut().step_by(stride).zip(line(i)) {
            *dst = v;
        }
    }
}

/// Writes `out[p·stride + q] = rows[q][p]` for the eight rows (of equal length) and every `p`,
/// eight columns at a time through AVX registers (unpacks, shuffles and lane permutes: 24
/// shuffles per 64 floats, against 32 for two 4×4 SSE transposes of half the width). Only
/// called when the CPU has AVX (`transpose_into` checks).
fn transpose8(rows: [&[f32]; 8], out: &mut [f32], stride: usize) {
    let kb = rows[0].len();
    debug_assert!(rows.iter().all(|r| r.len() == kb));
    // SAFETY: callers reach here only when `current_isa` is AVX2+FMA or AVX-512, so the CPU has
    // AVX, the feature `transpose8_columns` was compiled for.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    let p = unsafe { transpose8_columns(&rows, out, stride, kb) };
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let p = 0;
    for p in p..kb {
        for (q, row) in rows.iter().enumerate() {
            out[p * stride + q] = row[p];
        }
    }
}

/// The whole 8-column steps of [`transpose8`]; returns how many columns it wrote.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx")]
fn transpose8_columns(rows: &[&[f32]; 8], out: &mut [f32], stride: usize, kb: usize) -> usize {
    use std::arch::x86_64::*;
    let mut p = 0;
    while p + 8 <= kb {
        let load = |q: usize| {
            let src = &rows[q][p..p + 8];
            // SAFETY: `src` holds the 8 floats an unaligned 256-bit load reads; AVX is
            // enabled for this function.
            unsafe { _mm256_loadu_ps(src.as_ptr()) }
        };
        let r = [
            load(0),
            load(1),
            load(2),
            load(3),
            load(4),
            load(5),
            load(6),
            load(7),
        ];
        let (t0, t1) = (
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
        );
        let (t2, t3) = (
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
        );
        let (t4, t5) = (
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
        );
        let (t6, t7) = (
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        );
        // s0: rows 0-3 of columns 0 and 4; s1: columns 1 and 5; s2: 2 and 6; s3: 3 and 7;
        // s4-s7 the same for rows 4-7.
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let cols = [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ];
        for (t, col) in cols.into_iter().enumerate() {
            let dst = &mut out[(p + t) * stride..(p + t) * stride + 8];
            // SAFETY: `dst` holds the 8 floats an unaligned 256-bit store writes.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), col) };
        }
        p += 8;
    }
    p
}

/// Writes `out[p·stride + q] = rows[q][p]` for the four rows (of equal length) and every `p`: a
/// 4-row strip of a panel. On x86-64 four columns at a time go through SSE registers (part of the
/// baseline, so no detection is needed), which is several times faster than a scalar scatter.
fn transpose4(rows: [&[f32]; 4], out: &mut [f32], stride: usize) {
    let kb = rows[0].len();
    debug_assert!(rows.iter().all(|r| r.len() == kb));
    // Advanced only by the SSE loop, which Miri and other targets leave out.
    #[cfg_attr(any(not(target_arch = "x86_64"), miri), allow(unused_mut))]
    let mut p = 0;
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::*;
        while p + 4 <= kb {
            let load = |q: usize| {
                let src = &rows[q][p..p + 4];
                // SAFETY: `src` holds the 4 floats an unaligned 128-bit load reads.
                unsafe { _mm_loadu_ps(src.as_ptr()) }
            };
            let (r0, r1, r2, r3) = (load(0), load(1), load(2), load(3));
            // SAFETY: shuffles of registers only; SSE is part of the x86-64 baseline.
            let cols = unsafe {
                let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpacklo_ps(r2, r3));
                let (t2, t3) = (_mm_unpackhi_ps(r0, r1), _mm_unpackhi_ps(r2, r3));
                [
                    _mm_movelh_ps(t0, t1),
                    _mm_movehl_ps(t1, t0),
                    _mm_movelh_ps(t2, t3),
                    _mm_movehl_ps(t3, t2),
                ]
            };
            for (t, col) in cols.into_iter().enumerate() {
                let dst = &mut out[(p + t) * stride..(p + t) * stride + 4];
                // SAFETY: `dst` holds the 4 floats an unaligned 128-bit store writes.
                unsafe { _mm_storeu_ps(dst.as_mut_ptr(), col) };
            }
            p += 4;
        }
    }
    for p in p..kb {
        for (q, row) in rows.iter().enumerate() {
            out[p * stride + q] = row[p];
        }
    }
}
