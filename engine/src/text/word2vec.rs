//! Word2Vec (Mikolov et al., 2013) with negative sampling: skip-gram and CBOW.
//!
//! This is the algorithm of the original C tool and of gensim, written as a native routine rather
//! than with tensors and the tape: each training example touches only `1 + negative` rows of two
//! `[vocabulary, dim]` matrices, so the work is a few short dot products and updates, and a
//! general graph would cost more than the arithmetic. The pieces, in the order they act:
//!
//! - **subsampling** drops frequent words at random before the context windows are formed (a word
//!   seen with frequency `f` is kept with probability `(sqrt(f / sample) + 1) · sample / f`);
//! - a **reduced window**: each centre word draws its own window size from 1 to `window`, so near
//!   words count more than far ones;
//! - **negative sampling**: each (input, output) pair is one logistic regression for the true
//!   output word and `negative` for noise words drawn from the unigram distribution raised to 3/4
//!   (drawn in O(1) with Walker's alias method);
//! - a learning rate falling linearly from `alpha` to `min_alpha` over the whole run.
//!
//! **Threads, and why this is not a data race.** Like the original tool, the workers update the
//! shared matrices without locks ("Hogwild!", Recht et al. 2011): two threads may update the same
//! row at once and one update can overwrite the other. That is harmless for the model because
//! the updates are tiny and rarely collide, but a plain `f32` written by one thread and read by
//! another is undefined behaviour in Rust. So every element is held (two at a time) in an `AtomicU64` holding the `f32`s'
//! bits, read and written with `Relaxed` ordering: on x86 and ARM those compile to ordinary loads
//! and stores, no locked instructions, and the behaviour is defined (a read sees some earlier
//! write). Each worker copies the rows it needs into local buffers, does the arithmetic there,
//! and writes the results back. With one thread the result depends only on the seed; with more,
//! the interleaving of updates (and so the last digits of the vectors) changes from run to run.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::corpus::Corpus;
use super::vectors::WordVectors;
use crate::error::{bail, Error, Result};
use crate::tensor::rng::Rng;

/// Which word predicts which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Each word predicts the words around it.
    SkipGram,
    /// The mean of the surrounding words predicts the word in the middle ("continuous bag of
    /// words"); much cheaper per word than skip-gram.
    Cbow,
}

/// Training settings. The defaults are gensim's (and the original tool's, but for `alpha`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Skip-gram or CBOW.
    pub architecture: Architecture,
    /// Length of each word vector.
    pub dim: usize,
    /// The largest distance between a word and a context word.
    pub window: usize,
    /// Noise words per true pair.
    pub negative: usize,
    /// Subsampling threshold (0 turns subsampling off); 1e-3 to 1e-5 are usual.
    pub sample: f64,
    /// Passes over the corpus.
    pub epochs: usize,
    /// Learning rate at the start.
    pub alpha: f32,
    /// Learning rate at the end.
    pub min_alpha: f32,
    /// Fixes the initial vectors and every random draw.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            architecture: Architecture::SkipGram,
            dim: 100,
            window: 5,
            negative: 5,
            sample: 1e-3,
            epochs: 5,
            alpha: 0.025,
            min_alpha: 0.0001,
            seed: 1,
        }
    }
}

/// Where training is, passed to the progress callback after each block of about 10,000 words.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The epoch being trained, from 1.
    pub epoch: usize,
    /// The share of the whole run done, 0 to 1.
    pub fraction: f64,
    /// Raw corpus words (rare ones included, before subsampling) processed so far.
    pub raw_words: u64,
    /// Seconds since training started.
    pub seconds: f64,
    /// The current learning rate.
    pub alpha: f32,
}

impl Progress {
    /// Raw words per second so far: the figure gensim and the C tool report.
    pub fn words_per_sec(&self) -> f64 {
        self.raw_words as f64 / self.seconds.max(1e-9)
    }
}

/// What a finished run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Wall-clock seconds of training (not counting vocabulary building).
    pub seconds: f64,
    /// Raw words processed: corpus tokens times epochs.
    pub raw_words: u64,
    /// Words actually trained on, after rare words and subsampling were dropped.
    pub effective_words: u64,
    /// Worker threads used.
    pub threads: usize,
}

impl Report {
    /// Raw words per second.
    pub fn words_per_sec(&self) -> f64 {
        self.raw_words as f64 / self.seconds.max(1e-9)
    }
}

/// The callback's type: return `ControlFlow::Break(())` to stop training early (an error is
/// returned, and nothing is kept).
pub type OnProgress<'a> = &'a (dyn Fn(&Progress) -> ControlFlow<()> + Sync);

/// Trains word vectors on `corpus` with the engine's thread pool; `on_progress` sees each block.
pub fn train(
    corpus: &Corpus,
    config: &Config,
    on_progress: OnProgress,
) -> Result<(WordVectors, Report)> {
    validate(corpus, config)?;
    let model = Model::new(corpus, config);
    let jobs = jobs(corpus, JOB_WORDS);
    let threads = crate::threads::num_threads();
    let total = corpus.num_kept_words() * config.epochs as u64;
    let done = AtomicU64::new(0);
    let effective = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    for epoch in 0..config.epochs {
        crate::threads::pool().install(|| {
            jobs.par_iter().enumerate().for_each(|(j, range)| {
                if stop.load(Relaxed) {
                    return;
                }
                let progress = done.load(Relaxed) as f64 / total as f64;
                let alpha = (config.alpha - (config.alpha - config.min_alpha) * progress as f32)
                    .max(config.min_alpha);
                let mut rng = Rng::seed(
                    config
                        .seed
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .wrapping_add(((epoch as u64) << 32) | j as u64),
                );
                let (kept, trained) = SCRATCH.with(|s| {
                    let mut s = s.borrow_mut();
                    model.run_job(corpus, range.clone(), alpha, &mut rng, &mut s)
                });
                effective.fetch_add(trained, Relaxed);
                let now = done.fetch_add(kept, Relaxed) + kept;
                let p = Progress {
                    epoch: epoch + 1,
                    fraction: now as f64 / total as f64,
                    raw_words: corpus.raw_share(now),
                    seconds: start.elapsed().as_secs_f64(),
                    alpha,
                };
                if on_progress(&p).is_break() {
                    stop.store(true, Relaxed);
                }
            })
        });
        if stop.load(Relaxed) {
            bail!(
                "word2vec",
                "training was interrupted in epoch {}",
                epoch + 1
            );
        }
    }
    let report = Report {
        seconds: start.elapsed().as_secs_f64(),
        raw_words: corpus.raw_words() * config.epochs as u64,
        effective_words: effective.load(Relaxed),
        threads,
    };
    let vectors = WordVectors::new(
        corpus.vocab.words().to_vec(),
        config.dim,
        model.input_vectors(),
    )?;
    Ok((vectors, report))
}

/// Kept words per work item: big enough that scheduling is free, small enough that the learning
/// rate decays smoothly and both cores stay busy to the end (gensim uses the same size).
const JOB_WORDS: u64 = 10_000;

fn validate(corpus: &Corpus, c: &Config) -> Result<()> {
    let bad = |what: String| Err(Error::new("word2vec", what));
    if c.dim == 0 || c.dim > 4096 {
        return bad(format!("dim must be between 1 and 4096, got {}", c.dim));
    }
    if c.window == 0 || c.window > 100 {
        return bad(format!(
            "window must be between 1 and 100, got {}",
            c.window
        ));
    }
    if c.negative == 0 || c.negative > 100 {
        return bad(format!(
            "negative must be between 1 and 100, got {}",
            c.negative
        ));
    }
    if c.epochs == 0 || c.epochs > 1000 {
        return bad(format!(
            "epochs must be between 1 and 1000, got {}",
            c.epochs
        ));
    }
    if !(c.sample >= 0.0 && c.sample.is_finite()) {
        return bad(format!(
            "sample must be 0 (off) or a small positive number, got {}",
            c.sample
        ));
    }
    if !(c.alpha > 0.0 && c.alpha.is_finite() && c.min_alpha >= 0.0 && c.min_alpha <= c.alpha) {
        return bad(format!(
            "the learning rate must satisfy 0 <= min_alpha <= alpha, got alpha {} and min_alpha {}",
            c.alpha, c.min_alpha
        ));
    }
    if corpus.num_kept_words() < 2 {
        return bad("the corpus needs at least two words in the vocabulary".into());
    }
    crate::tensor::budget::check("word2vec", &[2, corpus.vocab.len(), c.dim])
}

/// Contiguous runs of sentences holding about `size` kept words each.
fn jobs(corpus: &Corpus, size: u64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut first, mut words) = (0, 0u64);
    for i in 0..corpus.num_sentences() {
        words += corpus.sentence(i).len() as u64;
        if words >= size {
            out.push(first..i + 1);
            first = i + 1;
            words = 0;
        }
    }
    if first < corpus.num_sentences() {
        out.push(first..corpus.num_sentences());
    }
    out
}

/// A `[rows, dim]` matrix of `f32`s shared by the workers (see the module docs). Elements are
/// stored in pairs, one `AtomicU64` per two `f32`s (low half first, so the bytes are those of a
/// plain `[f32]` on little-endian machines): a row is read and written with half as many
/// instructions as with one atomic per element. Rows are padded to an even length with zeros,
/// which stay zero because every update of a padding element is a multiple of another padding
/// element.
struct SharedMatrix {
    /// Pairs per row.
    pairs: usize,
    bits: Vec<AtomicU64>,
}

fn pack(lo: f32, hi: f32) -> u64 {
    lo.to_bits() as u64 | (hi.to_bits() as u64) << 32
}

impl SharedMatrix {
    fn new(rows: usize, dim: usize, mut value: impl FnMut() -> f32) -> SharedMatrix {
        let pairs = dim.div_ceil(2);
        let mut bits = Vec::with_capacity(rows * pairs);
        for _ in 0..rows {
            for p in 0..pairs {
                let lo = value();
                let hi = if 2 * p + 1 < dim { value() } else { 0.0 };
                bits.push(AtomicU64::new(pack(lo, hi)));
            }
        }
        SharedMatrix { pairs, bits }
    }

    /// Copies row `row` into `out` (of the padded length `2 * pairs`).
    fn load(&self, row: u32, out: &mut [f32]) {
        let src = &self.bits[row as usize * self.pairs..][..self.pairs];
        for (o, a) in out.chunks_exact_mut(2).zip(src) {
            let v = a.load(Relaxed);
            o[0] = f32::from_bits(v as u32);
            o[1] = f32::from_bits((v >> 32) as u32);
        }
    }

    fn store(&self, row: u32, values: &[f32]) {
        let dst = &self.bits[row as usize * self.pairs..][..self.pairs];
        for (a, v) in dst.iter().zip(values.chunks_exact(2)) {
            a.store(pack(v[0], v[1]), Relaxed);
        }
    }

    fn prefetch(&self, row: u32) {
        crate::kernels::prefetch::prefetch(&self.bits[row as usize * self.pairs..][..self.pairs]);
    }

    /// The matrix without padding.
    fn to_vec(&self, dim: usize) -> Vec<f32> {
        let mut row = vec![0.0; 2 * self.pairs];
        let mut out = Vec::with_capacity(self.bits.len() / self.pairs.max(1) * dim);
        for r in 0..self.bits.len() / self.pairs.max(1) {
            self.load(r as u32, &mut row);
            out.extend_from_slice(&row[..dim]);
        }
        out
    }
}

/// Per-thread buffers, reused across jobs and epochs.
#[derive(Default)]
struct Scratch {
    sentence: Vec<u32>,
    input: Vec<f32>,
    row: Vec<f32>,
    error: Vec<f32>,
    context: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

struct Model {
    config: Config,
    /// The word vectors being learned ("syn0").
    input: SharedMatrix,
    /// The output-side vectors the noise contrasts are scored against ("syn1neg").
    output: SharedMatrix,
    /// Probability of keeping each word, as a threshold on a 32-bit random number.
    keep: Vec<u64>,
    noise: Alias,
    sigmoid: SigmoidTable,
}

impl Model {
    fn new(corpus: &Corpus, config: &Config) -> Model {
        let (n, dim) = (corpus.vocab.len(), config.dim);
        // The original tool's initialisation: uniform in [-0.5, 0.5) / dim, outputs at zero.
        let mut rng = Rng::seed(config.seed);
        let input = SharedMatrix::new(n, dim, || (rng.next_f32() - 0.5) / dim as f32);
        let output = SharedMatrix::new(n, dim, || 0.0);
        let counts = corpus.vocab.counts();
        let total: u64 = counts.iter().sum();
        let keep = counts
            .iter()
            .map(|&c| {
                if config.sample <= 0.0 {
                    return 1 << 32;
                }
                // gensim's formula; `threshold` is the count at which a word starts to be dropped.
                let threshold = config.sample * total as f64;
                let p = ((c as f64 / threshold).sqrt() + 1.0) * threshold / c as f64;
                (p.min(1.0) * 4_294_967_296.0) as u64
            })
            .collect();
        let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
        Model {
            config: config.clone(),
            input,
            output,
            keep,
            noise: Alias::new(&weights),
            sigmoid: SigmoidTable::new(),
        }
    }

    fn input_vectors(&self) -> Vec<f32> {
        self.input.to_vec(self.config.dim)
    }

    /// Trains on sentences `range`; returns (kept words seen, words trained after subsampling).
    fn run_job(
        &self,
        corpus: &Corpus,
        range: std::ops::Range<usize>,
        alpha: f32,
        rng: &mut Rng,
        s: &mut Scratch,
    ) -> (u64, u64) {
        let dim = 2 * self.config.dim.div_ceil(2);
        for buf in [&mut s.input, &mut s.row, &mut s.error, &mut s.context] {
            buf.resize(dim, 0.0);
        }
        let (mut seen, mut trained) = (0u64, 0u64);
        for i in range {
            let sentence = corpus.sentence(i);
            seen += sentence.len() as u64;
            let mut words = std::mem::take(&mut s.sentence);
            words.clear();
            words.extend(
                sentence
                    .iter()
                    .copied()
                    .filter(|&w| self.keep[w as usize] > (rng.next_u64() >> 32)),
            );
            trained += words.len() as u64;
            for pos in 0..words.len() {
                // Rows needed soon: the word entering the window, the next centre's output row.
                if let Some(&w) = words.get(pos + self.config.window) {
                    self.input.prefetch(w);
                }
                if let Some(&w) = words.get(pos + 1) {
                    self.output.prefetch(w);
                }
                let reach = self.config.window - rng.below(self.config.window as u64) as usize;
                let lo = pos.saturating_sub(reach);
                let hi = (pos + reach + 1).min(words.len());
                match self.config.architecture {
                    Architecture::SkipGram => {
                        for c in lo..hi {
                            if c != pos {
                                self.skip_gram_pair(words[c], words[pos], alpha, rng, s);
                            }
                        }
                    }
                    Architecture::Cbow => {
                        self.cbow_word(&words[lo..hi], pos - lo, alpha, rng, s);
                    }
                }
            }
            s.sentence = words;
        }
        (seen, trained)
    }

    /// One skip-gram example: the vector of `context` predicts `word` against noise words.
    fn skip_gram_pair(&self, context: u32, word: u32, alpha: f32, rng: &mut Rng, s: &mut Scratch) {
        self.input.load(context, &mut s.input);
        s.error.fill(0.0);
        self.contrast(word, alpha, rng, &s.input, &mut s.error, &mut s.row);
        for (v, e) in s.input.iter_mut().zip(&s.error) {
            *v += e;
        }
        self.input.store(context, &s.input);
    }

    /// One CBOW example: the mean of `window` without its centre `centre` predicts the centre.
    fn cbow_word(&self, window: &[u32], centre: usize, alpha: f32, rng: &mut Rng, s: &mut Scratch) {
        if window.len() < 2 {
            return;
        }
        s.context.fill(0.0);
        for (i, &w) in window.iter().enumerate() {
            if i != centre {
                self.input.load(w, &mut s.input);
                axpy(&mut s.context, 1.0, &s.input);
            }
        }
        let inv = 1.0 / (window.len() - 1) as f32;
        s.context.iter_mut().for_each(|v| *v *= inv);
        s.error.fill(0.0);
        self.contrast(
            window[centre],
            alpha,
            rng,
            &s.context,
            &mut s.error,
            &mut s.row,
        );
        // As in word2vec and gensim (cbow_mean=1): every context word receives the whole error.
        for (i, &w) in window.iter().enumerate() {
            if i != centre {
                self.input.load(w, &mut s.input);
                axpy(&mut s.input, 1.0, &s.error);
                self.input.store(w, &s.input);
            }
        }
    }

    /// The negative-sampling step shared by both architectures: `hidden` should score high
    /// against `word`'s output vector and low against `negative` noise words. Updates the output
    /// vectors and adds the gradient for `hidden` into `error`.
    fn contrast(
        &self,
        word: u32,
        alpha: f32,
        rng: &mut Rng,
        hidden: &[f32],
        error: &mut [f32],
        row: &mut [f32],
    ) {
        // Draw the noise words first and ask for their rows: each is a likely cache miss, and
        // the loads overlap instead of waiting one after another.
        let mut targets: SmallVec<[u32; 16]> = smallvec![word];
        for _ in 0..self.config.negative {
            let t = self.noise.sample(rng.next_u64());
            if t != word {
                targets.push(t);
            }
        }
        for &t in &targets[1..] {
            self.output.prefetch(t);
        }
        for (d, &target) in targets.iter().enumerate() {
            let label = if d == 0 { 1.0 } else { 0.0 };
            self.output.load(target, row);
            let g = (label - self.sigmoid.get(dot(hidden, row))) * alpha;
            axpy(error, g, row);
            axpy(row, g, hidden);
            self.output.store(target, row);
        }
    }
}

/// `a · b`, with eight partial sums so the compiler can keep them in vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a · x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The logistic function from a table over [-6, 6], as in the original tool: saturated outside.
struct SigmoidTable(Vec<f32>);

const SIGMOID_RANGE: f32 = 6.0;
const SIGMOID_STEPS: usize = 1000;

impl SigmoidTable {
    fn new() -> SigmoidTable {
        SigmoidTable(
            (0..SIGMOID_STEPS)
                .map(|i| {
                    let x = (i as f64 / SIGMOID_STEPS as f64 * 2.0 - 1.0) * SIGMOID_RANGE as f64;
                    (1.0 / (1.0 + (-x).exp())) as f32
                })
                .collect(),
        )
    }

    fn get(&self, x: f32) -> f32 {
        if x >= SIGMOID_RANGE {
            1.0
        } else if x <= -SIGMOID_RANGE {
            0.0
        } else {
            let i = ((x + SIGMOID_RANGE) * (SIGMOID_STEPS as f32 / SIGMOID_RANGE / 2.0)) as usize;
            self.0[i.min(SIGMOID_STEPS - 1)]
        }
    }
}

/// Walker's alias method: draws index `i` with probability `weights[i] / sum` in O(1).
struct Alias {
    /// Keep the column's own index when the low 32 random bits fall below this.
    threshold: Vec<u64>,
    alias: Vec<u32>,
}

impl Alias {
    fn new(weights: &[f64]) -> Alias {
        let n = weights.len();
        let sum: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / sum).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left is 1 up to rounding.
        for i in small.into_iter().chain(large) {
            scaled[i] = 1.0;
        }
        let threshold = scaled
            .iter()
            .map(|&p| (p.clamp(0.0, 1.0) * 4_294_967_296.0) as u64)
            .collect();
        Alias { threshold, alias }
    }

    fn sample(&self, r: u64) -> u32 {
        let column = ((r >> 32) * self.alias.len() as u64) >> 32;
        if (r & 0xFFFF_FFFF) < self.threshold[column as usize] {
            column as u32
        } else {
            self.alias[column as usize]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_draws_match_the_weights() {
        let w = [1.0, 2.0, 3.0, 0.0, 4.0];
        let a = Alias::new(&w);
        let mut rng = Rng::seed(3);
        let mut hits = [0u32; 5];
        let n = 200_000;
        for _ in 0..n {
            hits[a.sample(rng.next_u64()) as usize] += 1;
        }
        for (h, w) in hits.iter().zip(w) {
            let p = *h as f64 / n as f64;
            assert!((p - w / 10.0).abs() < 0.005, "{hits:?}");
        }
    }

    #[test]
    fn sigmoid_table_is_close() {
        let t = SigmoidTable::new();
        for i in -800..800 {
            let x = i as f32 / 100.0;
            let exact = 1.0 / (1.0 + (-x as f64).exp());
            assert!((t.get(x) as f64 - exact).abs() < 0.01 + 0.0025, "{x}");
        }
    }

    /// Run under Miri by `.ci/run`: two workers updating the shared matrices at once must be
    /// free of data races (Miri's race detector checks every access).
    #[test]
    fn two_workers_update_shared_vectors_without_a_data_race() {
        crate::threads::set_num_threads(2).unwrap();
        let text = "ab cd ab ef cd ab\nef ab cd gh\n".repeat(30);
        let corpus = Corpus::from_text(&text, 1).unwrap();
        let cfg = Config {
            dim: 4,
            epochs: 1,
            negative: 2,
            window: 2,
            ..Config::default()
        };
        // Tiny jobs so that both workers get some.
        let model = Model::new(&corpus, &cfg);
        crate::threads::pool().install(|| {
            jobs(&corpus, 8).par_iter().enumerate().for_each(|(j, r)| {
                let mut rng = Rng::seed(j as u64);
                let mut s = Scratch::default();
                model.run_job(&corpus, r.clone(), 0.025, &mut rng, &mut s);
            })
        });
        assert!(model.input_vectors().iter().all(|v| v.is_finite()));
        let (vectors, report) = train(&corpus, &cfg, &|_| ControlFlow::Continue(())).unwrap();
        assert_eq!(vectors.len(), 4);
        assert_eq!(report.threads, 2);
    }

    #[test]
    fn bad_settings_are_refused() {
        let c = Corpus::from_text("a b a b a b\n", 1).unwrap();
        for cfg in [
            Config {
                dim: 0,
                ..Config::default()
            },
            Config {
                window: 0,
                ..Config::default()
            },
            Config {
                negative: 0,
                ..Config::default()
            },
            Config {
                sample: f64::NAN,
                ..Config::default()
            },
            Config {
                min_alpha: 1.0,
                ..Config::default()
            },
        ] {
            let e = train(&c, &cfg, &|_| ControlFlow::Continue(())).unwrap_err();
            assert_eq!(e.op, "word2vec");
        }
    }
}
