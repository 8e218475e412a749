//! Matrix multiplication `C = alpha·A·B + beta·C` on strided f32 matrices, written the BLIS way.
//!
//! ```text
//! for jc in columns of C, NC at a time           (B block of KC×NC: stays in L2)
//!   for pc in the inner dimension, KC at a time
//!     pack B[pc.., jc..] into NR-wide panels
//!     for ir in rows of C, MR at a time
//!       pack A[ir.., pc..] into one MR-tall panel  (stays in L1)
//!       for jr in NR panels                      (B panels stream from L2)
//!         micro-kernel: C[ir.., jr..] (MR×NR, in registers) += A panel · B panel
//! ```
//!
//! Each A panel is used by one sweep over the B block, so A is packed a panel at a time, just
//! before its sweep, and an A larger than L2 has the next panel's lines fetched during the sweep.
//!
//! The micro-kernel is chosen once at run time from what the CPU supports (AVX-512F, then AVX2 with
//! FMA, then a portable kernel), see [`Isa`]. Transposed operands are read through their strides
//! during packing (row-major A and column-major B are transposed into panels through 4×4 SSE
//! register transposes). The last rows of a C whose height is not a multiple of MR are computed in
//! place by shorter AVX-512 and AVX2 tiles. A row-major A is read in place, without the
//! transposing copy, by the AVX2 kernel always and by the AVX-512 kernel in products narrow enough
//! that A is read only a few times (`a_in_place_pays`). A product with at most 16 columns (a
//! classifier's 10 outputs) goes, on AVX-512, to a skinny kernel that keeps each row of C in one
//! register and reads A in place; on the other paths, a product narrower than a tile is computed
//! as Cᵀ = Bᵀ·Aᵀ, which fills the tiles. Large products are split across the engine's rayon pool
//! (by columns or rows of C).
//!
//! `matrixmultiply` stays as the test oracle ([`reference`]).

mod micro;
mod pack;

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::OnceLock;

use micro::{MicroKernel, Portable};
use rayon::prelude::*;

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

    /// Rows `rows` and columns `cols` of the view, as a view.
    pub fn sub(self, rows: Range<usize>, cols: Range<usize>) -> MatRef<'a> {
        MatRef {
            data: &self.data[rows.start * self.row_stride + cols.start * self.col_stride..],
            rows: rows.len(),
            cols: cols.len(),
            ..self
        }
    }

    fn reach(&self) -> usize {
        reach(self.rows, self.cols, self.row_stride, self.col_stride)
    }

    fn rows_from(self, r0: usize, rows: usize) -> MatRef<'a> {
        let start = r0 * self.row_stride;
        MatRef {
            data: &self.data[start.min(self.data.len())..],
            rows,
            ..self
        }
    }
}

/// A writable row-major matrix view: `data[r * row_stride + c]` is element `(r, c)`. Made over
/// floats ([`MatMut::row_major`], [`MatMut::strided`]), or over memory not written yet
/// ([`MatMut::uninit`]), which only a product with `beta == 0` takes: it writes every element of
/// its output and reads none.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [MaybeUninit<f32>],
    /// Whether `data` holds floats (else C may only be written).
    init: bool,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major matrix with no padding.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> MatMut<'a> {
        MatMut::strided(data, rows, cols, cols)
    }

    /// A matrix whose rows start `row_stride` floats apart.
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> MatMut<'a> {
        MatMut {
            data: as_uninit(data),
            init: true,
            rows,
            cols,
            row_stride,
        }
    }

    /// A matrix over memory not written yet, for a product with `beta == 0` (which [`sgemm`]
    /// requires of it), whose every element the product then writes.
    pub fn uninit(
        data: &'a mut [MaybeUninit<f32>],
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> MatMut<'a> {
        MatMut {
            data,
            init: false,
            rows,
            cols,
            row_stride,
        }
    }

    /// Rows `rows` and columns `cols` of the view, as a view.
    pub fn sub(self, rows: Range<usize>, cols: Range<usize>) -> MatMut<'a> {
        let MatMut {
            data,
            init,
            row_stride,
            ..
        } = self;
        MatMut {
            data: &mut data[rows.start * row_stride + cols.start..],
            init,
            rows: rows.len(),
            cols: cols.len(),
            row_stride,
        }
    }
}

/// Floats as memory the GEMM writes: the same memory, which stays initialised, because
/// everything the GEMM writes through the result is a float.
fn as_uninit(data: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and only floats are written through the
    // result (so `data` holds floats again once the borrow ends).
    unsafe { &mut *(data as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// Elements of C the product has written, as floats.
///
/// # Safety
/// Every element of `run` has been written.
unsafe fn written(run: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: the caller's promise, and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(run as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// One past the largest offset a `rows`×`cols` view with these strides touches (0 when empty).
fn reach(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// The instruction set a GEMM runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 12×32 tiles in zmm registers.
    Avx512,
    /// 6×16 tiles in ymm registers.
    Avx2Fma,
    /// 4×8 tiles in plain Rust, vectorised by the compiler for the baseline target.
    Portable,
}

impl Isa {
    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best kernel this CPU supports, detected once.
    pub fn detected() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2Fma]
                .into_iter()
                .find(|i| i.supported())
                .unwrap_or(Isa::Portable)
        })
    }
}

/// Whether [`with_isa`] forces an instruction set on this thread.
pub(crate) fn isa_forced() -> bool {
    FORCED.with(|f| f.get().is_some())
}

thread_local! {
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// An elementwise function applied to each element of C once its product is complete, while the
/// tile is still in cache: a Linear layer's activation fused into its GEMM (see
/// [`sgemm_then`], and [`sgemm_new`] for the bias too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    /// C as computed.
    None,
    /// `max(c, 0)` (NaN becomes 0, as in [`Tensor::relu`](crate::Tensor::relu)).
    Relu,
    /// GELU, erf form, as [`vmath::gelu`](crate::kernels::vmath::gelu).
    Gelu,
}

impl Epilogue {
    /// Applies the epilogue to a run of finished elements of C.
    #[inline]
    fn apply(self, run: &mut [f32]) {
        match self {
            Epilogue::None => {}
            Epilogue::Relu => run.iter_mut().for_each(|v| *v = v.max(0.0)),
            Epilogue::Gelu => crate::kernels::vmath::gelu_in_place(run),
        }
    }
}

/// What a product does to each element of C once it is complete, while the tile is still in
/// cache: adds a bias per column of C, then applies the epilogue. Passed down the driver to
/// every path that finishes elements.
#[derive(Clone, Copy)]
struct Finish<'a> {
    bias: Option<&'a [f32]>,
    ep: Epilogue,
    /// Whether the output being written is Cᵀ (`gemm_oriented`'s other orientation), whose rows
    /// are C's columns.
    transposed: bool,
}

impl Finish<'_> {
    const NONE: Finish<'static> = Finish {
        bias: None,
        ep: Epilogue::None,
        transposed: false,
    };

    fn is_none(&self) -> bool {
        self.bias.is_none() && self.ep == Epilogue::None
    }

    /// The same finish for the transposed output.
    fn transposed(self) -> Self {
        Finish {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Finishes `run`, the output's elements `(r, c0..c0 + run.len())`.
    #[inline]
    fn apply_run(self, run: &mut [f32], r: usize, c0: usize) {
        match self.bias {
            Some(b) if self.transposed => run.iter_mut().for_each(|v| *v += b[r]),
            Some(b) => run.iter_mut().zip(&b[c0..]).for_each(|(v, &x)| *v += x),
            None => {}
        }
        self.ep.apply(run);
    }

    /// Finishes the `rows × cols` block of `c` at (r0, c0), with strides (rs, cs), which the
    /// product has written.
    fn apply_block(
        self,
        c: &mut [MaybeUninit<f32>],
        (r0, c0): (usize, usize),
        (rows, cols): (usize, usize),
        (rs, cs): (usize, usize),
    ) {
        if self.is_none() {
            return;
        }
        for r in r0..r0 + rows {
            // SAFETY: the block is finished (this function's contract), so written.
            if cs == 1 {
                self.apply_run(unsafe { written(&mut c[r * rs + c0..][..cols]) }, r, c0);
            } else {
                for j in c0..c0 + cols {
                    let v = unsafe { written(std::slice::from_mut(&mut c[r * rs + j * cs])) };
                    self.apply_run(v, r, j);
                }
            }
        }
    }
}

/// Runs `f` with GEMMs on this thread forced to `isa` (for tests and benchmarks of each path).
/// Returns `None`, without running `f`, when the CPU cannot run that kernel.
pub fn with_isa<T>(isa: Isa, f: impl FnOnce() -> T) -> Option<T> {
    if !isa.supported() {
        return None;
    }
    let previous = FORCED.with(|c| c.replace(Some(isa)));
    let out = f();
    FORCED.with(|c| c.set(previous));
    Some(out)
}

/// The kernel GEMMs on this thread use.
pub fn current_isa() -> Isa {
    FORCED.with(|c| c.get()).unwrap_or_else(Isa::detected)
}

/// Cache sizes in bytes (L1 data, L2), read from Linux's sysfs, with common defaults elsewhere.
fn cache_sizes() -> (usize, usize) {
    static SIZES: OnceLock<(usize, usize)> = OnceLock::new();
    *SIZES.get_or_init(|| {
        let read = |level: &str, kind: &str| -> Option<usize> {
            (0..8).find_map(|i| {
                let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
                let lv = std::fs::read_to_string(format!("{dir}/level")).ok()?;
                let ty = std::fs::read_to_string(format!("{dir}/type")).ok()?;
                if lv.trim() != level || ty.trim() != kind {
                    return None;
                }
                let s = std::fs::read_to_string(format!("{dir}/size")).ok()?;
                let s = s.trim();
                let (num, mul) = if let Some(k) = s.strip_suffix('K') {
                    (k, 1024)
                } else if let Some(m) = s.strip_suffix('M') {
                    (m, 1 << 20)
                } else {
                    (s, 1)
                };
                num.parse::<usize>().ok().map(|n| n * mul)
            })
        };
        (
            read("1", "Data").unwrap_or(32 << 10),
            read("2", "Unified").unwrap_or(1 << 20),
        )
    })
}

/// Block sizes for kernel `K`, from the cache sizes (the loop nest is in the module docs):
/// - `kc`: one packed A panel (MR×KC), which stays in L1 while the B panels stream past it, takes
///   a quarter of L1 (256 for AVX-512's 12-row panels in 48 KiB), leaving room for the B panel in
///   flight and the C tile; at most 256;
/// - `nc`: the packed B block (KC×NC), which every A panel sweeps, takes half of L2, or all of a
///   small L2 up to 512 KiB.
///
/// Measured (1 thread, best of 4 interleaved), on the AVX-512 machine (48 KiB L1, 2 MiB L2):
/// keeping the A panel in L1 and streaming B took 1024² from 127 to 153 GFLOP/s and 2048² from
/// 126 to 148 over the opposite order; KC 256 / NC 1024 then reached 167 and 163, against 158 and
/// 149 for KC 184 with a B block of 4 MiB. On an AMD Zen 1 (AVX2, 32 KiB L1, 512 KiB L2), the
/// plain rule's KC 336 / NC 192 (a 256 KiB B block) ran 512² to 2048² at 32–33 GFLOP/s, KC 336 /
/// NC 384 at 34–35 and KC 256 / NC 512 (the whole L2) at 34.5–36 (3 interleaved rounds), presumably
/// because a 192-column block gives each packed A panel only 12 tiles to pay for its packing.
fn blocking<K: MicroKernel>() -> (usize, usize) {
    let (l1, l2) = cache_sizes();
    let kc = ((l1 / 4) / (4 * K::MR)).clamp(64, 256) / 8 * 8;
    let b_block = (l2 / 2).max(l2.min(512 << 10));
    let nc = (b_block / (4 * kc)).clamp(K::NR, 8192) / K::NR * K::NR;
    (kc, nc)
}

/// Shrinks a block size so that `len` splits into equal blocks (a multiple of `unit` each): 784 in
/// blocks of at most 256 becomes 4 × 200 rather than 3 × 256 + 16, whose short last block would
/// run the micro-kernel with little work per tile.
fn balanced(len: usize, block: usize, unit: usize) -> usize {
    let blocks = len.div_ceil(block).max(1);
    len.div_ceil(blocks).next_multiple_of(unit).min(block)
}

/// A scratch buffer of floats whose start is aligned to a 64-byte cache line, so that
/// the micro-kernel's full-width vector loads from packed panels never straddle two lines.
struct Aligned {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    const fn empty() -> Aligned {
        Aligned {
            buf: Vec::new(),
            start: 0,
            len: 0,
        }
    }

    /// `len` floats, reusing the allocation when it is big enough. The contents are left as they
    /// were: packing writes every element it later reads, padding included.
    fn take(&mut self, len: usize) -> &mut [f32] {
        if self.buf.len() < len + 16 {
            self.buf = vec![0.0f32; (len + 16).next_power_of_two()];
        }
        self.start = (self.buf.as_ptr() as usize)
            .next_multiple_of(64)
            .wrapping_sub(self.buf.as_ptr() as usize)
            / 4;
        self.len = len;
        &mut self.buf[self.start..self.start + len]
    }
}

thread_local! {
    /// Each thread's packing buffers for A and B, kept between calls so that small products do not
    /// pay for an allocation.
    static PACK: std::cell::RefCell<(Aligned, Aligned)> = const { std::cell::RefCell::new((Aligned::empty(), Aligned::empty())) };
}

/// The output as strides over a slice, so the transposed orientation can write Cᵀ. Its elements
/// are read only when `beta != 0` (or in the later passes over k, after the first wrote them).
struct Out<'a> {
    data: &'a mut [MaybeUninit<f32>],
    rs: usize,
    cs: usize,
}

/// `c = alpha·a·b + beta·c` with kernel `K`, on one thread.
fn gemm_serial<K: MicroKernel>(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &mut Out<'_>,
    fin: Finish<'_>,
) {
    let n = b.cols;
    let (kc, nc) = blocking::<K>();
    let k = a.cols;
    let (kc, nc) = (balanced(k, kc, 8), balanced(n, nc, K::NR));
    PACK.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let (abuf, bbuf) = &mut *bufs;
        let bpack = bbuf.take(kc * nc.min(n).div_ceil(K::NR) * K::NR);
        let apack = abuf.take(K::MR * kc);
        gemm_blocks::<K>(alpha, (&a, &b), beta, c, fin, (kc, nc), (apack, bpack));
    });
}

/// The loop nest of [`gemm_serial`], over buffers it was given.
#[allow(clippy::too_many_arguments)]
fn gemm_blocks<K: MicroKernel>(
    alpha: f32,
    (a, b): (&MatRef<'_>, &MatRef<'_>),
    beta: f32,
    c: &mut Out<'_>,
    fin: Finish<'_>,
    (kc, nc): (usize, usize),
    (apack, bpack): (&mut [f32], &mut [f32]),
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut tile = [0.0f32; 12 * 32];
    // Kernels that can read a row-major B in place do, instead of copying it into panels first,
    // unless B's rows are a multiple of 2 KiB apart (see `b_in_place_pays`). (The output must be
    // row-major: the scratch-tile path for strided outputs reads packed panels.)
    let direct_b = K::DIRECT_B
        && b.col_stride == 1
        && c.cs == 1
        && (m <= K::MR || (m <= K::DIRECT_B_ROWS && b_in_place_pays(b.row_stride)));
    let direct_a = K::DIRECT_A
        && a.col_stride == 1
        && (K::DIRECT_A_ALWAYS || a_in_place_pays(a.row_stride, n));
    // An A larger than L2 is read from further out: its panels are fetched ahead (below).
    let a_from_memory = 4 * a.reach() > cache_sizes().1;
    for jc in (0..n).step_by(nc) {
        let nb = nc.min(n - jc);
        let tiles = nb.div_ceil(K::NR);
        for pc in (0..k).step_by(kc) {
            let kb = kc.min(k - pc);
            if !direct_b {
                pack::pack_b(b, pc, jc, kb, nb, K::NR, bpack);
            }
            // The first pass over k applies beta; later passes accumulate.
            let beta_here = if pc == 0 { beta } else { 1.0 };
            for ir in (0..m).step_by(K::MR) {
                // One panel of A at a time, packed just before the B panels pass it (it stays
                // in L1); the next panel's source lines are requested a part per tile, so
                // that they arrive while this panel's tiles compute.
                let next_rows = if a_from_memory && !direct_a {
                    K::MR.min(m.saturating_sub(ir + K::MR))
                } else {
                    0
                };
                if !direct_a {
                    pack::pack_a(a, ir, pc, K::MR.min(m - ir), kb, K::MR, apack);
                }
                let ap = &apack[..];
                for jr in (0..nb).step_by(K::NR) {
                    let (rows, cols) = (K::MR.min(m - ir), K::NR.min(nb - jr));
                    let (r0, c0) = (ir, jc + jr);
                    if next_rows > 0 {
                        let part = (jr / K::NR, tiles);
                        pack::prefetch_a(a, (r0 + K::MR, pc), (next_rows, kb), part);
                    }
                    let (bp, ldb) = if !direct_b {
                        (&bpack[(jr / K::NR) * K::NR * kb..], K::NR)
                    } else if cols == K::NR {
                        (&b.data[pc * b.row_stride + c0..], b.row_stride)
                    } else {
                        // The last, partial panel of a B read in place: packed (padded).
                        pack::pack_b(b, pc, c0, kb, cols, K::NR, bpack);
                        (&bpack[..], K::NR)
                    };
                    if direct_a {
                        let first = &a.data[r0 * a.row_stride + pc..];
                        // The next panel's rows are fetched while the first B panel is used.
                        let next = if jr == 0 && r0 + K::MR < m {
                            a.data[(r0 + K::MR) * a.row_stride + pc..].as_ptr()
                        } else {
                            std::ptr::null()
                        };
                        let a_in_place = (first.as_ptr(), a.row_stride, next);
                        // Straight into C when the tile is full-width, else into the scratch
                        // tile (beta 0), copied over after.
                        let into_c = cols == K::NR && c.cs == 1;
                        let (dst, rsc, beta_k) = if into_c {
                            (
                                c.data[r0 * c.rs + c0..].as_mut_ptr().cast(),
                                c.rs,
                                beta_here,
                            )
                        } else {
                            (tile.as_mut_ptr(), K::NR, 0.0)
                        };
                        // SAFETY: A's rows r0..r0+rows hold kb floats each from column pc,
                        // `lda` apart; B as for `run_rows` below; `dst` is the `rows` rows of
                        // the full-width tile at (r0, c0), inside `c`, or the scratch tile
                        // (MR·NR floats).
                        let done = unsafe {
                            K::run_rows_a(
                                rows,
                                kb,
                                alpha,
                                a_in_place,
                                (bp.as_ptr(), ldb),
                                beta_k,
                                dst,
                                rsc,
                            )
                        };
                        debug_assert!(done, "DIRECT_A kernels take every row count");
                        if !into_c {
                            store_tile(&tile, K::NR, (rows, cols), c, (r0, c0), beta_here);
                        }
                    } else if ldb == K::NR && rows == K::MR && cols == K::NR && c.cs == 1 {
                        let at = r0 * c.rs + c0;
                        debug_assert!(at + (K::MR - 1) * c.rs + K::NR <= c.data.len());
                        // SAFETY: the panels hold kb·MR and kb·NR packed floats; the full tile
                        // at (r0, c0) lies inside `c` (checked by `sgemm` and asserted above).
                        unsafe {
                            K::run(
                                kb,
                                alpha,
                                ap.as_ptr(),
                                bp.as_ptr(),
                                beta_here,
                                c.data.as_mut_ptr().add(at).cast(),
                                c.rs,
                            )
                        };
                    } else if cols == K::NR
                        && c.cs == 1
                        // SAFETY: as above, for the `rows` rows of the tile that exist; a B
                        // read in place has its kb rows of NR columns inside `b` (a full
                        // panel: c0 + NR ≤ n, checked by `sgemm`).
                        && unsafe {
                            K::run_rows(
                                rows,
                                kb,
                                alpha,
                                ap.as_ptr(),
                                (bp.as_ptr(), ldb),
                                beta_here,
                                c.data.as_mut_ptr().add(r0 * c.rs + c0).cast(),
                                c.rs,
                            )
                        }
                    {
                        // The last rows of C, computed in place.
                    } else {
                        // An edge tile, or a strided output: compute into a scratch tile, then
                        // copy the part that exists.
                        // SAFETY: `tile` holds MR·NR ≤ 12·32 floats, written and not read (beta 0).
                        unsafe {
                            K::run(
                                kb,
                                alpha,
                                ap.as_ptr(),
                                bp.as_ptr(),
                                0.0,
                                tile.as_mut_ptr(),
                                K::NR,
                            )
                        };
                        store_tile(&tile, K::NR, (rows, cols), c, (r0, c0), beta_here);
                    }
                }
                if pc + kb == k {
                    // This panel of rows is final: its epilogue, one run per row while the
                    // rows are in cache (per tile, the calls cost more than the runs).
                    let rows = K::MR.min(m - ir);
                    fin.apply_block(c.data, (ir, jc), (rows, nb), (c.rs, c.cs));
                }
            }
        }
    }
}

/// Whether a row-major B (rows `ldb` floats apart) is better read in place by the micro-kernel
/// than packed into panels, for a product with several panels of A rows.
///
/// The kernel streams each B panel from L2 either way, two cache lines per step of k; read in
/// place they are `ldb` floats apart rather than contiguous, which costs nothing as long as the
/// rows spread over the cache's sets: it pays unless the rows are a multiple of 2 KiB apart, when
/// a panel's lines crowd into a few sets of L1 (and, 8 KiB apart, of L2). (With a single panel of
/// A rows, m ≤ MR, B is always read in place: each element is used once, and packing would only
/// copy it.) Measured (1 thread, interleaved, GFLOP/s, packed → in place): 128×784×256
/// 146 → 164, 64³ 135 → 152, 128³ 140 → 151, 256³ 156 → 161; 512³ the same; 1024³ 161 → 146
/// and 2048³ 155 → 63, hence the exclusion. On an AMD Zen 1 (AVX2, best of 5 interleaved):
/// 128×784×256 34.1 → 34.8, 128³ 35.5 → 36.2, 64³ 32.8 → 34.2, 512³ the same, but 4096×128×128
/// 35.9 → 35.6 and a GPT training step (products of 2048 rows) 2.9% slower; hence
/// [`MicroKernel::DIRECT_B_ROWS`].
fn b_in_place_pays(ldb: usize) -> bool {
    !ldb.is_multiple_of(512)
}

/// Whether a row-major A (rows `lda` floats apart) is better read in place by the micro-kernel
/// than packed into panels, for a product with `n` columns (for the kernels without
/// [`MicroKernel::DIRECT_A_ALWAYS`]).
///
/// Packing a row-major A is a transpose (each panel holds MR rows' values per k), which runs at
/// about 2 floats a cycle, against n/32 cycles of multiply-adds per float of A: 14% of the time
/// on 4096×128·128×128. Read in place, the kernel's broadcasts take A's MR rows as MR streams,
/// the next panel's rows fetched while the first B panel passes; that costs the kernel a few
/// percent (the panel's lines are scattered over L1 rather than contiguous), so it pays for
/// narrow products only. Measured with AVX-512 (1 thread, best of 3 interleaved runs, GFLOP/s,
/// packed → in place): 64³ 130 → 160, 128³ 155 → 169, 4096×128×128 159 → 166, 128×784×256
/// 167 → 168, 256³ 183 → 176, 512³ 187 → 176. Rows a multiple of 4 KiB apart (1024 floats) would
/// all map to the same L1 sets and evict each other, so those are always packed.
///
/// On an AMD Zen 1 (AVX2, 1 thread, best of 5 interleaved, GFLOP/s, packed → in place) reading
/// in place wins at every shape measured, hence the AVX2 kernel's `DIRECT_A_ALWAYS`: 256³ 36.1 →
/// 37.7, 512³ 36.1 → 37.5, 768³ 35.0 → 36.6, 1000³ 35.4 → 36.2, 128×784×256 34.8 → 36.4,
/// 2048×128×384 35.5 → 37.3, 2048×512×512 36.3 → 37.5, 2048×128×1024 34.9 → 36.1; and with rows
/// 4 KiB apart or more, 1024³ 34.8 → 35.7 and 2048³ 34.4 → 35.9 (best of 3).
fn a_in_place_pays(lda: usize, n: usize) -> bool {
    n < 256 && !lda.is_multiple_of(1024)
}

/// Stores the first `rows`×`cols` of a scratch tile (rows `ld` apart) into C at `(r0, c0)`,
/// adding `beta` times C's old values unless `beta` is 0.
fn store_tile(
    tile: &[f32],
    ld: usize,
    (rows, cols): (usize, usize),
    c: &mut Out<'_>,
    (r0, c0): (usize, usize),
    beta: f32,
) {
    for (i, src) in tile.chunks_exact(ld).take(rows).enumerate() {
        let src = &src[..cols];
        if c.cs == 1 {
            let dst = &mut c.data[(r0 + i) * c.rs + c0..][..cols];
            if beta == 0.0 {
                for (d, &v) in dst.iter_mut().zip(src) {
                    d.write(v);
                }
            } else {
                // SAFETY: with beta ≠ 0 C holds floats (`sgemm` checks; or an earlier pass over
                // k wrote them).
                let dst = unsafe { written(dst) };
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v + beta * *d;
                }
            }
        } else {
            for (j, &v) in src.iter().enumerate() {
                let d = &mut c.data[(r0 + i) * c.rs + (c0 + j) * c.cs];
                if beta == 0.0 {
                    d.write(v);
                } else {
                    // SAFETY: as above.
                    let d = unsafe { d.assume_init_mut() };
                    *d = v + beta * *d;
                }
            }
        }
    }
}

/// `c = alpha·a·b + beta·c` for `b` with at most 16 columns (a classifier's 10 outputs, say), on
/// AVX-512: B is packed once into rows of 16 (zero padded), A is read in place, and each row of C
/// lives in one register ([`micro::avx512_skinny`]). On 128×256·256×10 this runs 2.5× faster than
/// the transposed blocked product, which packs all of A for a single pass.
#[cfg(target_arch = "x86_64")]
fn gemm_skinny_avx512(
    alpha: f32,
    (a, b): (&MatRef<'_>, &MatRef<'_>),
    beta: f32,
    c: &mut MatMut<'_>,
    fin: Finish<'_>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(n <= 16 && Isa::Avx512.supported());
    PACK.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let bp = bufs.1.take(k * 16);
        for (p, row) in bp.chunks_exact_mut(16).enumerate() {
            row[n..].fill(0.0);
            if b.col_stride == 1 {
                row[..n].copy_from_slice(&b.data[p * b.row_stride..][..n]);
            } else {
                for (j, v) in row[..n].iter_mut().enumerate() {
                    *v = b.data[p * b.row_stride + j * b.col_stride];
                }
            }
        }
        let mut r0 = 0;
        while r0 < m {
            let left = m - r0;
            let ap = (
                a.data[r0 * a.row_stride..].as_ptr(),
                a.row_stride,
                a.col_stride,
            );
            let cp = (
                c.data[r0 * c.row_stride..].as_mut_ptr().cast(),
                c.row_stride,
            );
            // SAFETY: rows r0..r0+R (R ≤ left) of A reach at most `a.reach()` ≤ its length, and the
            // first n columns of those rows of C lie inside `c.data` (both checked by `sgemm`); the
            // packed B holds k·16 floats; AVX-512F was checked above.
            let step = unsafe {
                if left >= 8 {
                    micro::avx512_skinny::<8>(k, alpha, ap, bp.as_ptr(), beta, cp, n);
                    8
                } else if left >= 4 {
                    micro::avx512_skinny::<4>(k, alpha, ap, bp.as_ptr(), beta, cp, n);
                    4
                } else if left >= 2 {
                    micro::avx512_skinny::<2>(k, alpha, ap, bp.as_ptr(), beta, cp, n);
                    2
                } else {
                    micro::avx512_skinny::<1>(k, alpha, ap, bp.as_ptr(), beta, cp, n);
                    1
                }
            };
            r0 += step;
        }
    });
    fin.apply_block(c.data, (0, 0), (m, n), (c.row_stride, 1));
}

/// Picks the orientation: a product with fewer columns than a tile is wide but more rows is
/// computed as Cᵀ = Bᵀ·Aᵀ, whose tiles are full (or, on AVX-512 with at most 16 columns, by the
/// skinny kernel).
fn gemm_oriented<K: MicroKernel>(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    mut c: MatMut<'_>,
    fin: Finish<'_>,
) {
    let rs = c.row_stride;
    #[cfg(target_arch = "x86_64")]
    if K::SKINNY && b.cols <= 16 && a.rows > b.cols {
        return gemm_skinny_avx512(alpha, (&a, &b), beta, &mut c, fin);
    }
    if b.cols < K::NR && a.rows > b.cols {
        let mut out = Out {
            data: c.data,
            rs: 1,
            cs: rs,
        };
        gemm_serial::<K>(alpha, b.t(), a.t(), beta, &mut out, fin.transposed());
    } else {
        let mut out = Out {
            data: c.data,
            rs,
            cs: 1,
        };
        gemm_serial::<K>(alpha, a, b, beta, &mut out, fin);
    }
}

/// Splits a product that is large enough to pay for it across the engine's threads. A product at
/// least as wide as it is tall is split by columns: each thread multiplies all of A by its own
/// columns of B (so B, usually the larger operand, is packed once in total) into a private block,
/// and the blocks are then copied into C by rows in parallel. A tall product is split by rows of C,
/// each thread packing its own copy of B.
fn gemm_parallel<K: MicroKernel>(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    fin: Finish<'_>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    // Below ~8 MFLOP (tens of microseconds on one core) the split costs more than it saves; such
    // products do not even touch the pool.
    if flops < 8e6 || (m < 2 * K::MR && n < 2 * K::NR) {
        return gemm_oriented::<K>(alpha, a, b, beta, c, fin);
    }
    // Called from a piece of a parallel region (a data-parallel shard, say), the threads are
    // already busy: splitting again would only add packing and merging.
    if !crate::threads::may_split() {
        return gemm_oriented::<K>(alpha, a, b, beta, c, fin);
    }
    let pool = crate::threads::pool();
    let threads = pool.current_num_threads();
    if threads < 2 {
        return gemm_oriented::<K>(alpha, a, b, beta, c, fin);
    }
    let isa = current_isa();
    let rs = c.row_stride;
    if n >= m && n >= 2 * K::NR {
        let cols_per = n.div_ceil(threads).div_ceil(K::NR) * K::NR;
        let parts: Vec<(usize, usize)> = (0..n)
            .step_by(cols_per)
            .map(|j0| (j0, cols_per.min(n - j0)))
            .collect();
        // Each part: A · B[:, j0..j0+w] into a private m×w block (workers run the caller's kernel).
        let blocks: Vec<Vec<f32>> = crate::threads::install(|| {
            parts
                .par_iter()
                .map(|&(j0, w)| {
                    let mut block = vec![0.0f32; m * w];
                    let bj = MatRef {
                        data: &b.data[(j0 * b.col_stride).min(b.data.len())..],
                        rows: k,
                        cols: w,
                        ..b
                    };
                    // The finish waits for the merge, which adds beta·C first.
                    with_isa(isa, || {
                        let out = MatMut::row_major(&mut block, m, w);
                        gemm_oriented::<K>(alpha, a, bj, 0.0, out, Finish::NONE)
                    });
                    block
                })
                .collect()
        });
        crate::threads::install(|| {
            c.data
                .par_chunks_mut(rs)
                .take(m)
                .enumerate()
                .for_each(|(i, row)| {
                    let row = &mut row[..n];
                    for (&(j0, w), block) in parts.iter().zip(&blocks) {
                        let src = &block[i * w..(i + 1) * w];
                        let dst = &mut row[j0..j0 + w];
                        if beta == 0.0 {
                            dst.iter_mut().zip(src).for_each(|(d, &v)| {
                                d.write(v);
                            });
                        } else {
                            // SAFETY: with beta ≠ 0, C holds floats (`sgemm` checks).
                            unsafe { written(dst) }
                                .iter_mut()
                                .zip(src)
                                .for_each(|(d, &v)| *d = v + beta * *d);
                        }
                    }
                    // SAFETY: the parts cover the row's n columns, all written just now.
                    fin.apply_run(unsafe { written(row) }, i, 0);
                });
        });
        return;
    }
    let rows_per = m.div_ceil(threads).div_ceil(K::MR) * K::MR;
    crate::threads::install(|| {
        c.data
            .par_chunks_mut(rows_per * rs)
            .enumerate()
            .for_each(|(t, chunk)| {
                let r0 = t * rows_per;
                if r0 >= m {
                    return; // slack past the last row of C
                }
                let rows = rows_per.min(m - r0);
                let sub = MatMut {
                    data: chunk,
                    init: c.init,
                    rows,
                    cols: n,
                    row_stride: rs,
                };
                // Workers run the same kernel as the caller, even when a test forced one.
                with_isa(isa, || {
                    gemm_oriented::<K>(alpha, a.rows_from(r0, rows), b, beta, sub, fin)
                });
            });
    });
}

/// `c = alpha·a·b + beta·c`. When `beta == 0`, `c` is only written, never read (NaN in it is
/// harmless).
///
/// # Panics
/// If the shapes do not chain (`a.cols != b.rows`, or `c` is not `a.rows`×`b.cols`) or a view's
/// strides reach outside its slice. Callers check shapes first and report errors themselves; a
/// panic here is a bug in the engine.
pub fn sgemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    sgemm_leaves(alpha, a, b, beta, c, Finish::NONE)
}

/// [`sgemm`], then `ep` applied to every element of `c`: fused into the product, each tile of C
/// finished while it is still in cache (`c = ep(alpha·a·b + beta·c)`).
///
/// # Panics
/// As [`sgemm`].
pub fn sgemm_then(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    ep: Epilogue,
) {
    let fin = Finish {
        bias: None,
        ep,
        transposed: false,
    };
    sgemm_leaves(alpha, a, b, beta, c, fin)
}

/// A fresh `a.rows × b.cols` row-major matrix `ep(alpha·a·b + bias)`, `bias` (if any) one value
/// per column added to every row, written once: not zeroed first (for the gradients of a GPT
/// step's Linear layers, that pass was a sixth of the time their products took outside the
/// micro-kernel), nor filled with the bias (for a GPT forward pass, 3% of its time).
///
/// # Panics
/// As [`sgemm`], or if `bias` does not have `b.cols` values.
pub fn sgemm_new(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    bias: Option<&[f32]>,
    ep: Epilogue,
) -> Vec<f32> {
    assert!(
        bias.is_none_or(|v| v.len() == b.cols),
        "sgemm_new: the bias needs one value per column"
    );
    let len = a.rows * b.cols;
    let mut c = Vec::with_capacity(len);
    let out = MatMut::uninit(&mut c.spare_capacity_mut()[..len], a.rows, b.cols, b.cols);
    let fin = Finish {
        bias,
        ep,
        transposed: false,
    };
    sgemm_leaves(alpha, a, b, 0.0, out, fin);
    // SAFETY: a product with beta = 0 writes every element of its output, `rows × cols` from
    // the start here (`tests/gemm.rs` checks it on every path, over outputs filled with NaN).
    unsafe { c.set_len(len) };
    c
}

/// The body of [`sgemm`] and [`sgemm_then`]: every path to C below applies
/// `fin` to the elements it finishes.
fn sgemm_leaves(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    fin: Finish<'_>,
) {
    assert!(
        a.cols == b.rows && c.rows == a.rows && c.cols == b.cols,
        "sgemm: shapes do not chain"
    );
    assert!(
        a.reach() <= a.data.len() && b.reach() <= b.data.len(),
        "sgemm: operand strides reach outside the slice"
    );
    assert!(
        c.row_stride >= c.cols && reach(c.rows, c.cols, c.row_stride, 1) <= c.data.len(),
        "sgemm: output strides reach outside the slice"
    );
    assert!(
        c.init || beta == 0.0,
        "sgemm: an output not written yet needs beta = 0"
    );
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            let row = &mut c.data[r * c.row_stride..r * c.row_stride + n];
            for v in row.iter_mut() {
                // SAFETY: read only with beta ≠ 0, when C holds floats (asserted above).
                let old = if beta == 0.0 {
                    0.0
                } else {
                    unsafe { v.assume_init() }
                };
                v.write(beta * old);
            }
            // SAFETY: every element of the row was written just now.
            fin.apply_run(unsafe { written(row) }, r, 0);
        }
        return;
    }
    match current_isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => gemm_parallel::<micro::Avx512>(alpha, a, b, beta, c, fin),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => gemm_parallel::<micro::Avx2Fma>(alpha, a, b, beta, c, fin),
        _ => gemm_parallel::<Portable>(alpha, a, b, beta, c, fin),
    }
}

/// Writes `src` transposed into `out` as a row-major `src.cols × src.rows` matrix
/// (`out[p·rows + i] = src[i][p]`), through the packing's 8×8 register transposes when `src`'s
/// rows are contiguous. For an operand that several products read transposed: attention's Kᵀ and
/// Vᵀ, which every block of queries would otherwise transpose again while packing it.
///
/// # Panics
/// If `out` is shorter than `src.rows · src.cols`, or `src` reaches past its data.
pub fn transpose(src: MatRef<'_>, out: &mut [f32]) {
    let (rows, cols) = (src.rows, src.cols);
    assert!(
        out.len() >= rows * cols && src.reach() <= src.data.len(),
        "transpose: {rows}×{cols} does not fit its buffers"
    );
    if rows == 0 || cols == 0 {
        return;
    }
    if src.col_stride == 1 {
        let line = |i: usize| &src.data[i * src.row_stride..][..cols];
        pack::transpose_into(line, rows, out, rows);
    } else {
        for (p, out) in out.chunks_exact_mut(rows).take(cols).enumerate() {
            for (i, o) in out.iter_mut().enumerate() {
                *o = src.data[i * src.row_stride + p * src.col_stride];
            }
        }
    }
}

/// The same product computed by the `matrixmultiply` crate: the oracle the tests compare against.
pub fn reference(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    assert!(
        a.cols == b.rows && c.rows == a.rows && c.cols == b.cols,
        "reference: shapes do not chain"
    );
    assert!(
        a.reach() <= a.data.len()
            && b.reach() <= b.data.len()
            && reach(c.rows, c.cols, c.row_stride, 1) <= c.data.len()
    );
    assert!(
        c.init || beta == 0.0,
        "reference: an output not written yet needs beta = 0"
    );
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    // SAFETY: the asserts guarantee every index the strides reach lies inside its slice; `c` is a
    // unique borrow, so it does not alias the operands; C is read only with beta ≠ 0, when it
    // holds floats (matrixmultiply does not read C when beta is 0).
    unsafe {
        matrixmultiply::sgemm(
            a.rows,
            a.cols,
            b.cols,
            alpha,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.data.as_mut_ptr().cast(),
            c.row_stride as isize,
            1,
        );
    }
}
