//! Word2Vec learns what co-occurs, is reproducible on one thread and can be interrupted; PCA
//! matches NumPy's SVD (`tests/fixtures/make_pca_fixture.py`) on both of its code paths.

mod common;

use std::ops::ControlFlow;

use engine::linalg::Pca;
use engine::text::word2vec::{self, Architecture, Config};
use engine::text::{Corpus, WordVectors};
use engine::{Rng, Tensor};
use serde_json::Value;

/// The `i`-th word of group `g` (`xa`..`xt` or `ya`..`yt`: words are letters only).
fn word(g: char, i: u64) -> String {
    format!("{g}{}", (b'a' + i as u8) as char)
}

/// Sentences of words drawn from one of two disjoint groups of 20 words.
fn two_topic_text(sentences: usize, seed: u64) -> String {
    let mut rng = Rng::seed(seed);
    let mut text = String::new();
    for _ in 0..sentences {
        let group = if rng.next_f32() < 0.5 { 'x' } else { 'y' };
        for _ in 0..10 {
            text.push_str(&word(group, rng.below(20)));
            text.push(' ');
        }
        text.push('\n');
    }
    text
}

fn train(corpus: &Corpus, arch: Architecture) -> WordVectors {
    let cfg = Config {
        architecture: arch,
        dim: 16,
        epochs: 5,
        sample: 0.0,
        ..Config::default()
    };
    word2vec::train(corpus, &cfg, &|_| ControlFlow::Continue(()))
        .unwrap()
        .0
}

/// Mean cosine within the groups minus the mean across them.
fn separation(wv: &WordVectors) -> f32 {
    let (mut within, mut across, mut nw, mut na) = (0.0, 0.0, 0, 0);
    for i in 0..20 {
        for j in 0..20 {
            for (x, y, same) in [('x', 'x', true), ('y', 'y', true), ('x', 'y', false)] {
                if same && i == j {
                    continue;
                }
                let s = wv.similarity(&word(x, i), &word(y, j)).unwrap();
                if same {
                    within += s;
                    nw += 1;
                } else {
                    across += s;
                    na += 1;
                }
            }
        }
    }
    within / nw as f32 - across / na as f32
}

#[test]
fn both_architectures_put_co_occurring_words_together() {
    let corpus = Corpus::from_text(&two_topic_text(3000, 1), 1).unwrap();
    assert_eq!(corpus.vocab.len(), 40);
    for arch in [Architecture::SkipGram, Architecture::Cbow] {
        let wv = train(&corpus, arch);
        let gap = separation(&wv);
        assert!(
            gap > 0.3,
            "{arch:?}: within-group minus across-group cosine is only {gap}"
        );
        let near = wv.most_similar(&["xd"], &[], 5).unwrap();
        assert!(
            near.iter().all(|(w, _)| w.starts_with('x')),
            "{arch:?}: {near:?}"
        );
    }
}

#[test]
fn one_thread_and_one_seed_give_identical_vectors() {
    engine::threads::set_num_threads(1).unwrap();
    let corpus = Corpus::from_text(&two_topic_text(500, 2), 1).unwrap();
    let a = train(&corpus, Architecture::SkipGram);
    let b = train(&corpus, Architecture::SkipGram);
    for w in a.words() {
        assert_eq!(a.vector(w).unwrap(), b.vector(w).unwrap(), "{w}");
    }
}

#[test]
fn training_stops_when_the_callback_says_so() {
    let corpus = Corpus::from_text(&two_topic_text(5000, 3), 1).unwrap();
    let e = word2vec::train(&corpus, &Config::default(), &|p| {
        if p.fraction > 0.2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap_err();
    assert!(e.to_string().contains("interrupted"), "{e}");
}

fn check_pca(name: &str, x: &Tensor, expected: &Value) {
    let k = expected["k"].as_u64().unwrap() as usize;
    let p = Pca::fit(x, k).unwrap();
    let ratio: Vec<f64> = expected["explained_ratio"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (i, (got, want)) in p.explained_ratio.iter().zip(&ratio).enumerate() {
        assert!(
            (*got as f64 - want).abs() < 1e-4 * want.max(1e-3),
            "{name}: explained ratio {i}: {got} vs NumPy {want}"
        );
    }
    let comps = p.components.to_vec();
    let want: Vec<f64> = expected["abs_components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let worst = comps
        .iter()
        .zip(&want)
        .map(|(g, w)| (g.abs() as f64 - w).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 2e-3,
        "{name}: components differ from NumPy's by up to {worst}"
    );
    // Reconstruction from all components of a projection is a projection: applying it twice
    // changes nothing.
    let z = p.transform(x).unwrap();
    let back = p.inverse_transform(&z).unwrap();
    let again = p.inverse_transform(&p.transform(&back).unwrap()).unwrap();
    common::assert_close(name, &again, &back, 1e-3, 1e-3);
}

#[test]
fn pca_matches_numpy_on_digits_and_mnist() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/pca_fixture.json").unwrap())
            .unwrap();
    let digits = engine::io::csv::load_csv("tutorials/data/digits_8x8.csv")
        .unwrap()
        .into_dataset("label")
        .unwrap();
    check_pca("digits 8x8", &digits.x, &fixture["digits"]);
    let mnist = engine::io::idx::load_idx_images("tutorials/data/mnist10k-images-idx3-ubyte.gz")
        .unwrap()
        .narrow(0, 0, 2000)
        .unwrap()
        .reshape(&[2000, 784])
        .unwrap()
        .div_scalar(255.0);
    check_pca("MNIST 2000", &mnist, &fixture["mnist2000"]);
}

#[test]
fn pca_refuses_bad_requests() {
    let x = Tensor::zeros([5, 3]);
    for k in [0, 4] {
        let e = Pca::fit(&x, k).unwrap_err();
        assert!(e.to_string().contains("k ="), "{e}");
    }
    assert!(Pca::fit(&Tensor::zeros([5]), 1).is_err());
}
