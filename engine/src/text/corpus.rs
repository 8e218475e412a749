//! Turning text into word ids: the tokenizer, the vocabulary and an encoded corpus.
//!
//! Tokens are the maximal runs of ASCII letters after lower-casing, so punctuation, digits and
//! apostrophes split words off ("King," and "king." are both `king`; "don't" is `don`, `t`). It is
//! the tokenisation the comparison with gensim uses (`benches/gensim/w2v_compare.py`), written as
//! the regular expression `[a-z]+` over the lower-cased line. Each line of the text is a sentence:
//! Word2Vec's context windows never cross a line break.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{bail, Error, Result};

/// Calls `f` on each token of `line` (see the module docs for what a token is).
pub fn for_each_token(line: &str, mut f: impl FnMut(&str)) {
    let mut word = String::new();
    for c in line.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c.to_ascii_lowercase());
        } else if !word.is_empty() {
            f(&word);
            word.clear();
        }
    }
    if !word.is_empty() {
        f(&word);
    }
}

/// The tokens of `line`, lower-cased.
pub fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(line, |w| out.push(w.to_string()));
    out
}

/// Words kept for training, most frequent first, with their counts in the corpus.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    words: Vec<String>,
    counts: Vec<u64>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// A vocabulary of the given words and counts, sorted by falling count (ties alphabetically,
    /// so the order does not depend on hashing).
    pub fn from_counts(counts: impl IntoIterator<Item = (String, u64)>) -> Vocab {
        let mut pairs: Vec<(String, u64)> = counts.into_iter().collect();
        pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let index = pairs
            .iter()
            .enumerate()
            .map(|(i, (w, _))| (w.clone(), i as u32))
            .collect();
        let (words, counts) = pairs.into_iter().unzip();
        Vocab {
            words,
            counts,
            index,
        }
    }

    /// The number of distinct words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether no word made it into the vocabulary.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The id of `word`, if it is in the vocabulary.
    pub fn id(&self, word: &str) -> Option<u32> {
        self.index.get(word).copied()
    }

    /// The word with id `id`.
    pub fn word(&self, id: u32) -> &str {
        &self.words[id as usize]
    }

    /// All words, by id.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// How often each word occurs, by id.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
}

/// A tokenised text: sentences of word ids over a vocabulary of the words seen at least
/// `min_count` times. Rarer words are dropped from the sentences, as word2vec and gensim do, but
/// still counted in [`Corpus::raw_words`], which is what words-per-second figures are quoted in.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The vocabulary.
    pub vocab: Vocab,
    ids: Vec<u32>,
    /// `ids[starts[i]..starts[i + 1]]` is sentence `i`.
    starts: Vec<usize>,
    raw_words: u64,
}

impl Corpus {
    /// Tokenises `text` line by line and keeps the words that occur at least `min_count` times.
    pub fn from_text(text: &str, min_count: u64) -> Result<Corpus> {
        let min_count = min_count.max(1);
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut raw_words = 0u64;
        for line in text.lines() {
            for_each_token(line, |w| {
                raw_words += 1;
                match counts.get_mut(w) {
                    Some(c) => *c += 1,
                    None => {
                        counts.insert(w.to_string(), 1);
                    }
                }
            });
        }
        let vocab = Vocab::from_counts(counts.into_iter().filter(|&(_, c)| c >= min_count));
        if vocab.is_empty() {
            bail!(
                "corpus",
                "no word occurs {min_count} times or more in {raw_words} words of text: lower min_count or give more text"
            );
        }
        let mut ids = Vec::with_capacity(raw_words as usize);
        let mut starts = vec![0];
        for line in text.lines() {
            for_each_token(line, |w| {
                if let Some(id) = vocab.id(w) {
                    ids.push(id);
                }
            });
            if ids.len() > *starts.last().unwrap_or(&0) {
                starts.push(ids.len());
            }
        }
        Ok(Corpus {
            vocab,
            ids,
            starts,
            raw_words,
        })
    }

    /// Reads a UTF-8 text file (gzip-compressed when its name ends in `.gz`) and tokenises it.
    pub fn from_file(path: impl AsRef<Path>, min_count: u64) -> Result<Corpus> {
        Corpus::from_text(&read_text(path.as_ref())?, min_count)
    }

    /// The number of sentences (non-empty lines after dropping rare words).
    pub fn num_sentences(&self) -> usize {
        self.starts.len() - 1
    }

    /// Sentence `i` as word ids.
    pub fn sentence(&self, i: usize) -> &[u32] {
        &self.ids[self.starts[i]..self.starts[i + 1]]
    }

    /// Word ids kept for training (words in the vocabulary).
    pub fn num_kept_words(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Every token of the text, rare ones included.
    pub fn raw_words(&self) -> u64 {
        self.raw_words
    }

    /// Raw words from the start up to (not including) sentence `i`, in proportion: used to quote
    /// words per second in raw words, as gensim does.
    pub(crate) fn raw_share(&self, kept: u64) -> u64 {
        if self.ids.is_empty() {
            return 0;
        }
        (kept as f64 * self.raw_words as f64 / self.ids.len() as f64) as u64
    }
}

/// A whole text file as a string, decompressing `.gz`; errors name the file.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = crate::io::read_maybe_gz("read_text", path)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::new(
            "read_text",
            format!("{} is not UTF-8 text: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_and_case_split_off() {
        assert_eq!(
            tokenize("King, the KING. king's don't 3rd"),
            ["king", "the", "king", "king", "s", "don", "t", "rd"]
        );
    }

    #[test]
    fn rare_words_are_dropped_but_counted() {
        let c = Corpus::from_text("a b a\n\nc a b\nd\n", 2).unwrap();
        assert_eq!(c.vocab.words(), ["a", "b"]);
        assert_eq!(c.vocab.counts(), [3, 2]);
        assert_eq!(c.num_sentences(), 2);
        assert_eq!(c.sentence(1), [0, 1]);
        assert_eq!(c.raw_words(), 7);
        assert!(Corpus::from_text("a b c", 2).is_err());
    }
}
