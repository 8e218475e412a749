//! Text: tokenising a corpus, training Word2Vec on it, and using the word vectors.

pub mod corpus;
pub mod vectors;
pub mod word2vec;

pub use corpus::{tokenize, Corpus, Vocab};
pub use vectors::{AnalogyReport, WordVectors};
pub use word2vec::{Architecture, Config as Word2VecConfig};

use crate::error::{bail, Result};
use crate::Tensor;

/// A text as character ids: the ids (`[n]`, as f32 whole numbers) and the characters they stand
/// for, sorted, so id `i` is `chars[i]`. For character-level models.
pub fn char_ids(text: &str) -> Result<(Tensor, Vec<char>)> {
    let mut chars: Vec<char> = text
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    chars.sort_unstable();
    if chars.is_empty() {
        bail!("char_ids", "the text is empty");
    }
    let ids: Vec<f32> = text
        .chars()
        .map(|c| chars.binary_search(&c).unwrap_or(0) as f32)
        .collect();
    let n = ids.len();
    Ok((Tensor::from_vec(ids, [n])?, chars))
}
