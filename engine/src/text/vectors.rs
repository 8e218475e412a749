//! Trained word vectors: nearest words, analogies by vector arithmetic, the analogy test set, and
//! the word2vec text format that gensim, fastText and others read.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::{bail, Error, Result};
use crate::Tensor;

/// Words and their vectors, with unit-length copies for cosine similarity.
#[derive(Clone, Debug)]
pub struct WordVectors {
    words: Vec<String>,
    index: HashMap<String, u32>,
    dim: usize,
    vectors: Vec<f32>,
    /// The vectors scaled to length 1, as a `[words, dim]` tensor for matrix products.
    unit: Tensor,
}

impl WordVectors {
    /// Vectors for `words`, stored row by row in `vectors` (`words.len() * dim` values).
    pub fn new(words: Vec<String>, dim: usize, vectors: Vec<f32>) -> Result<WordVectors> {
        if dim == 0 || vectors.len() != words.len() * dim {
            bail!(
                "word_vectors",
                "{} words of dimension {dim} need {} values, got {}",
                words.len(),
                words.len() * dim,
                vectors.len()
            );
        }
        let mut index = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            if index.insert(w.clone(), i as u32).is_some() {
                bail!("word_vectors", "the word `{w}` appears twice");
            }
        }
        let unit: Vec<f32> = vectors
            .chunks_exact(dim)
            .flat_map(|v| {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                v.iter().map(move |x| x * scale)
            })
            .collect();
        let unit = Tensor::from_vec(unit, [words.len(), dim])?;
        Ok(WordVectors {
            words,
            index,
            dim,
            vectors,
            unit,
        })
    }

    /// The number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are no words.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The length of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All words, most frequent first when they came from training.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Whether `word` has a vector.
    pub fn contains(&self, word: &str) -> bool {
        self.index.contains_key(word)
    }

    fn id(&self, op: &'static str, word: &str) -> Result<usize> {
        self.index.get(word).map(|&i| i as usize).ok_or_else(|| {
            Error::new(
                op,
                format!(
                    "`{word}` is not in the vocabulary ({} words; words are lower case, and rare ones were dropped)",
                    self.words.len()
                ),
            )
        })
    }

    /// The vector of `word`.
    pub fn vector(&self, word: &str) -> Result<&[f32]> {
        let i = self.id("vector", word)?;
        Ok(&self.vectors[i * self.dim..][..self.dim])
    }

    /// The vectors of `words` as a `[n, dim]` tensor (for plots and projections).
    pub fn matrix(&self, words: &[&str]) -> Result<Tensor> {
        let mut data = Vec::with_capacity(words.len() * self.dim);
        for w in words {
            data.extend_from_slice(self.vector(w)?);
        }
        Tensor::from_vec(data, [words.len(), self.dim])
    }

    /// Cosine similarity of two words.
    pub fn similarity(&self, a: &str, b: &str) -> Result<f32> {
        let (a, b) = (self.id("similarity", a)?, self.id("similarity", b)?);
        let u = self.unit.data();
        let row = |i: usize| &u[i * self.dim..][..self.dim];
        Ok(row(a).iter().zip(row(b)).map(|(x, y)| x * y).sum())
    }

    /// The `k` words nearest by cosine to the sum of the unit vectors of `positive` minus those
    /// of `negative`, leaving out the query words themselves (gensim's `most_similar`, the
    /// "3CosAdd" rule for analogies: king − man + woman is `positive = [king, woman]`,
    /// `negative = [man]`).
    pub fn most_similar(
        &self,
        positive: &[&str],
        negative: &[&str],
        k: usize,
    ) -> Result<Vec<(String, f32)>> {
        if positive.is_empty() && negative.is_empty() {
            bail!("most_similar", "give at least one word");
        }
        let mut query = Vec::new();
        for (words, sign) in [(positive, 1.0), (negative, -1.0)] {
            for w in words {
                query.push((self.id("most_similar", w)?, sign));
            }
        }
        let ranked = self.rank(&[query], k)?;
        Ok(ranked[0]
            .iter()
            .map(|&(i, s)| (self.words[i].clone(), s))
            .collect())
    }

    /// For each query (word ids with signs), the `k` best other words and their cosines.
    fn rank(&self, queries: &[Vec<(usize, f32)>], k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        let u = self.unit.data();
        let mut q = vec![0.0f32; queries.len() * self.dim];
        for (row, query) in q.chunks_exact_mut(self.dim).zip(queries) {
            for &(i, sign) in query {
                for (r, x) in row.iter_mut().zip(&u[i * self.dim..][..self.dim]) {
                    *r += sign * x;
                }
            }
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        let scores = crate::no_grad(|| {
            Tensor::from_vec(q, [queries.len(), self.dim])?.matmul(&self.unit.t()?)
        })?;
        let scores = scores.data();
        Ok(queries
            .iter()
            .enumerate()
            .map(|(r, query)| {
                let row = &scores[r * self.len()..][..self.len()];
                let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
                for (i, &s) in row.iter().enumerate() {
                    if query.iter().any(|&(j, _)| j == i) || (best.len() == k && s <= best[k - 1].1)
                    {
                        continue;
                    }
                    let at = best.partition_point(|&(_, b)| b >= s);
                    best.insert(at, (i, s));
                    best.truncate(k);
                }
                best
            })
            .collect())
    }

    /// Scores the word-analogy questions in `text` (the `questions-words.txt` format: `: section`
    /// lines, then `a b c d` meaning a is to b as c is to d). A question counts when all four
    /// words have vectors; it is right when the nearest word to b − a + c, other than a, b and c,
    /// is d. Words are lower-cased, as the tokenizer does.
    pub fn evaluate_analogies(&self, text: &str) -> Result<AnalogyReport> {
        let mut report = AnalogyReport::default();
        let mut questions: Vec<(usize, [usize; 4])> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix(':') {
                report.sections.push(Section {
                    name: name.trim().to_string(),
                    ..Section::default()
                });
                continue;
            }
            let words: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
            if words.len() != 4 {
                bail!(
                    "evaluate_analogies",
                    "line {}: expected four words `a b c d`, got `{line}`",
                    n + 1
                );
            }
            if report.sections.is_empty() {
                report.sections.push(Section::default());
            }
            let section = report.sections.len() - 1;
            let ids: Vec<usize> = words
                .iter()
                .filter_map(|w| self.index.get(w))
                .map(|&i| i as usize)
                .collect();
            match <[usize; 4]>::try_from(ids) {
                Ok(ids) => questions.push((section, ids)),
                Err(_) => report.skipped += 1,
            }
        }
        for batch in questions.chunks(512) {
            let queries: Vec<Vec<(usize, f32)>> = batch
                .iter()
                .map(|(_, [a, b, c, _])| vec![(*b, 1.0), (*c, 1.0), (*a, -1.0)])
                .collect();
            let answers = self.rank(&queries, 1)?;
            for ((section, ids), best) in batch.iter().zip(answers) {
                let s = &mut report.sections[*section];
                s.total += 1;
                if best.first().is_some_and(|&(i, _)| i == ids[3]) {
                    s.correct += 1;
                }
            }
        }
        Ok(report)
    }

    /// Writes the word2vec text format: a `count dim` line, then one `word v1 v2 ...` line per
    /// word, for the first `limit` words (all when `None`; trained vectors come most frequent
    /// first). The file is written atomically.
    pub fn save_text(&self, path: impl AsRef<Path>, limit: Option<usize>) -> Result<()> {
        let n = limit.unwrap_or(self.len()).min(self.len());
        let mut out = String::with_capacity(n * (self.dim * 10 + 16));
        let _ = writeln!(out, "{n} {}", self.dim);
        for (w, v) in self
            .words
            .iter()
            .zip(self.vectors.chunks_exact(self.dim))
            .take(n)
        {
            out.push_str(w);
            for x in v {
                let _ = write!(out, " {x}");
            }
            out.push('\n');
        }
        crate::io::atomic::write_atomic(path.as_ref(), out.as_bytes())
    }

    /// Reads the word2vec text format (as written by [`WordVectors::save_text`] or gensim's
    /// `save_word2vec_format(binary=False)`).
    pub fn load_text(path: impl AsRef<Path>) -> Result<WordVectors> {
        let path = path.as_ref();
        let text = super::corpus::read_text(path)?;
        let shown = path.display();
        let mut lines = text.lines();
        let header: Vec<usize> = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                Error::new(
                    "load_word_vectors",
                    format!("{shown}: the first line must be `count dim`"),
                )
            })?;
        let [count, dim] = header[..] else {
            bail!(
                "load_word_vectors",
                "{shown}: the first line must be `count dim`"
            );
        };
        crate::tensor::budget::check("load_word_vectors", &[count, dim])?;
        let mut words = Vec::with_capacity(count);
        let mut vectors = Vec::with_capacity(count * dim);
        for (n, line) in lines.enumerate().take(count) {
            let mut parts = line.split_whitespace();
            let word = parts.next().unwrap_or("");
            let before = vectors.len();
            for p in parts {
                vectors.push(p.parse::<f32>().map_err(|_| {
                    Error::new(
                        "load_word_vectors",
                        format!("{shown} line {}: `{p}` is not a number", n + 2),
                    )
                })?);
            }
            if vectors.len() - before != dim {
                bail!(
                    "load_word_vectors",
                    "{shown} line {}: expected {dim} numbers after the word, got {}",
                    n + 2,
                    vectors.len() - before
                );
            }
            words.push(word.to_string());
        }
        if words.len() != count {
            bail!(
                "load_word_vectors",
                "{shown}: the header promises {count} words, the file has {}",
                words.len()
            );
        }
        WordVectors::new(words, dim, vectors)
    }
}

/// Results on an analogy test set, per section.
#[derive(Clone, Debug, Default)]
pub struct AnalogyReport {
    /// Each `: section` of the file, in order.
    pub sections: Vec<Section>,
    /// Questions left out because a word has no vector.
    pub skipped: usize,
}

/// One section's score.
#[derive(Clone, Debug, Default)]
pub struct Section {
    /// Its name, e.g. `family`.
    pub name: String,
    /// Questions answered right.
    pub correct: usize,
    /// Questions asked (all four words known).
    pub total: usize,
}

impl AnalogyReport {
    /// Questions answered right, over all sections.
    pub fn correct(&self) -> usize {
        self.sections.iter().map(|s| s.correct).sum()
    }

    /// Questions asked (all four words known), over all sections.
    pub fn total(&self) -> usize {
        self.sections.iter().map(|s| s.total).sum()
    }

    /// Share answered right of those asked.
    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.total().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> WordVectors {
        let words = ["king", "queen", "man", "woman", "apple"]
            .map(String::from)
            .to_vec();
        #[rustfmt::skip]
        let v = vec![
            1.0, 1.0, 0.0,   // king: royal + male
            1.0, 0.0, 1.0,   // queen: royal + female
            0.0, 1.0, 0.0,   // man
            0.0, 0.0, 1.0,   // woman
            -1.0, 0.1, 0.1,  // apple
        ];
        WordVectors::new(words, 3, v).unwrap()
    }

    #[test]
    fn analogy_by_vector_arithmetic() {
        let wv = toy();
        let best = wv.most_similar(&["king", "woman"], &["man"], 2).unwrap();
        assert_eq!(best[0].0, "queen");
        assert!(wv
            .most_similar(&["kings"], &[], 1)
            .unwrap_err()
            .to_string()
            .contains("not in the vocabulary"));
        let r = wv
            .evaluate_analogies(
                ": family\nman woman king queen\nman king woman queen\nman woman boy girl\n",
            )
            .unwrap();
        assert_eq!((r.correct(), r.total(), r.skipped), (2, 2, 1));
    }

    #[test]
    fn text_format_round_trip() {
        let wv = toy();
        let dir = std::env::temp_dir().join(format!("gradbook-wv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.txt");
        wv.save_text(&path, None).unwrap();
        let back = WordVectors::load_text(&path).unwrap();
        assert_eq!(back.words(), wv.words());
        assert_eq!(back.vector("apple").unwrap(), wv.vector("apple").unwrap());
        std::fs::write(&path, "2 3\na 1 2 3\nb 1 2\n").unwrap();
        assert!(WordVectors::load_text(&path)
            .unwrap_err()
            .to_string()
            .contains("expected 3 numbers"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
