//! Text and embeddings in scripts: corpora, Word2Vec, word vectors, and PCA projections.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Instant;

use engine::linalg::Pca;
use engine::text::word2vec::{self, Progress};
use engine::text::{Architecture, Corpus, Word2VecConfig, WordVectors};
use engine::Tensor;
use rhai::{Array, Dynamic, Engine, Map, FLOAT, INT};

use super::{err, fail, interrupted, opt_num, Output, RResult, SharedHost};

/// A tokenised corpus, shared rather than copied when scripts pass it around.
#[derive(Clone)]
pub struct CorpusRef(pub Rc<Corpus>);

/// Trained word vectors, shared.
#[derive(Clone)]
pub struct Vectors(pub Rc<WordVectors>);

fn count(v: INT, what: &str) -> RResult<usize> {
    if v < 1 {
        return fail(format!("{what} must be at least 1, got {v}"));
    }
    Ok(v as usize)
}

fn word_list(a: &Array, what: &str) -> RResult<Vec<String>> {
    a.iter()
        .map(|d| {
            d.clone()
                .into_immutable_string()
                .map(|s| s.to_string())
                .or_else(|_| {
                    fail(format!(
                        "{what}: expected words (strings), got a {}",
                        d.type_name()
                    ))
                })
        })
        .collect()
}

fn ranked(list: Vec<(String, f32)>) -> Array {
    list.into_iter()
        .map(|(w, c)| {
            let mut m = Map::new();
            m.insert("word".into(), w.into());
            m.insert("cosine".into(), (c as FLOAT).into());
            Dynamic::from_map(m)
        })
        .collect()
}

fn config(o: &Map) -> RResult<Word2VecConfig> {
    let d = Word2VecConfig::default();
    let architecture = match o.get("architecture").map(|v| v.to_string()).as_deref() {
        None | Some("skipgram") | Some("skip-gram") | Some("sg") => Architecture::SkipGram,
        Some("cbow") => Architecture::Cbow,
        Some(other) => {
            return fail(format!(
                "word2vec: architecture must be \"skipgram\" or \"cbow\", got \"{other}\""
            ))
        }
    };
    let whole = |key: &str, default: usize| -> RResult<usize> {
        let v = opt_num(o, key, default as f64)?;
        if v < 0.0 || v.fract() != 0.0 {
            return fail(format!("word2vec: {key} must be a whole number, got {v}"));
        }
        Ok(v as usize)
    };
    Ok(Word2VecConfig {
        architecture,
        dim: whole("dim", d.dim)?,
        window: whole("window", d.window)?,
        negative: whole("negative", d.negative)?,
        sample: opt_num(o, "sample", d.sample)?,
        epochs: whole("epochs", d.epochs)?,
        alpha: opt_num(o, "alpha", d.alpha as f64)? as f32,
        min_alpha: opt_num(o, "min_alpha", d.min_alpha as f64)? as f32,
        seed: whole("seed", d.seed as usize)? as u64,
    })
}

/// Trains, showing epoch, progress and words per second on a terminal's standard error.
fn train(host: &SharedHost, corpus: &Corpus, cfg: &Word2VecConfig) -> RResult<Map> {
    let name = match cfg.architecture {
        Architecture::SkipGram => "skip-gram",
        Architecture::Cbow => "CBOW",
    };
    let live = std::io::stderr().is_terminal();
    let last = Mutex::new(Instant::now());
    let on_progress = |p: &Progress| {
        if live {
            if let Ok(mut t) = last.try_lock() {
                if t.elapsed().as_millis() >= 200 {
                    *t = Instant::now();
                    eprint!(
                        "\r\x1b[K{name}: epoch {}/{}, {:>3.0}% done, {:.0}k words/s, learning rate {:.4}",
                        p.epoch,
                        cfg.epochs,
                        p.fraction * 100.0,
                        p.words_per_sec() / 1e3,
                        p.alpha
                    );
                }
            }
        }
        if interrupted() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let result = word2vec::train(corpus, cfg, &on_progress);
    if live {
        eprint!("\r\x1b[K");
    }
    let (vectors, report) = result.map_err(err)?;
    host.borrow_mut().emit(Output::Text(format!(
        "{name}: {} epochs over {:.2} M words in {:.1} s on {} thread{}: {:.0}k words/s",
        cfg.epochs,
        corpus.raw_words() as f64 / 1e6,
        report.seconds,
        report.threads,
        if report.threads == 1 { "" } else { "s" },
        report.words_per_sec() / 1e3
    )));
    let mut m = Map::new();
    m.insert("vectors".into(), Dynamic::from(Vectors(Rc::new(vectors))));
    m.insert("seconds".into(), (report.seconds as FLOAT).into());
    m.insert(
        "words_per_sec".into(),
        (report.words_per_sec() as FLOAT).into(),
    );
    m.insert("raw_words".into(), (report.raw_words as INT).into());
    m.insert(
        "effective_words".into(),
        (report.effective_words as INT).into(),
    );
    m.insert("threads".into(), (report.threads as INT).into());
    m.insert("architecture".into(), name.into());
    Ok(m)
}

fn analogy_map(r: &engine::text::AnalogyReport) -> Map {
    let mut m = Map::new();
    m.insert("accuracy".into(), (r.accuracy() as FLOAT).into());
    m.insert("correct".into(), (r.correct() as INT).into());
    m.insert("total".into(), (r.total() as INT).into());
    m.insert("skipped".into(), (r.skipped as INT).into());
    let sections: Array = r
        .sections
        .iter()
        .map(|s| {
            let mut x = Map::new();
            x.insert("name".into(), s.name.clone().into());
            x.insert("correct".into(), (s.correct as INT).into());
            x.insert("total".into(), (s.total as INT).into());
            x.insert(
                "accuracy".into(),
                (s.correct as FLOAT / s.total.max(1) as FLOAT).into(),
            );
            Dynamic::from_map(x)
        })
        .collect();
    m.insert("sections".into(), sections.into());
    m
}

/// Registers corpus, Word2Vec, word-vector and PCA functions.
pub fn register(e: &mut Engine, host: SharedHost) {
    e.register_type_with_name::<CorpusRef>("Corpus");
    e.register_type_with_name::<Vectors>("WordVectors");
    e.register_type_with_name::<Pca>("Pca");
    e.register_fn("to_string", |c: &mut CorpusRef| {
        format!(
            "Corpus({} words, {} distinct kept, {} sentences)",
            c.0.raw_words(),
            c.0.vocab.len(),
            c.0.num_sentences()
        )
    });
    e.register_fn("to_string", |v: &mut Vectors| {
        format!("WordVectors({} words, dim {})", v.0.len(), v.0.dim())
    });
    e.register_fn("tokenize", |text: &str| -> Array {
        engine::text::tokenize(text)
            .into_iter()
            .map(Into::into)
            .collect()
    });
    let h = host.clone();
    e.register_fn("load_corpus", move |path: &str| -> RResult<CorpusRef> {
        let p = h.borrow().readable(path)?;
        Ok(CorpusRef(Rc::new(Corpus::from_file(p, 5).map_err(err)?)))
    });
    let h = host.clone();
    e.register_fn(
        "load_corpus",
        move |path: &str, min_count: INT| -> RResult<CorpusRef> {
            let p = h.borrow().readable(path)?;
            let min = count(min_count, "load_corpus: min_count")? as u64;
            Ok(CorpusRef(Rc::new(Corpus::from_file(p, min).map_err(err)?)))
        },
    );
    e.register_get("raw_words", |c: &mut CorpusRef| c.0.raw_words() as INT);
    e.register_get("vocab_size", |c: &mut CorpusRef| c.0.vocab.len() as INT);
    e.register_get("sentences", |c: &mut CorpusRef| c.0.num_sentences() as INT);
    e.register_fn("top_words", |c: &mut CorpusRef, n: INT| -> Array {
        let v = &c.0.vocab;
        (0..(n.max(0) as usize).min(v.len()))
            .map(|i| {
                let mut m = Map::new();
                m.insert("word".into(), v.words()[i].clone().into());
                m.insert("count".into(), (v.counts()[i] as INT).into());
                Dynamic::from_map(m)
            })
            .collect()
    });
    let h = host.clone();
    e.register_fn("word2vec", move |c: CorpusRef, o: Map| -> RResult<Map> {
        train(&h, &c.0, &config(&o)?)
    });
    e.register_fn("len", |v: &mut Vectors| v.0.len() as INT);
    e.register_fn("dim", |v: &mut Vectors| v.0.dim() as INT);
    e.register_fn("contains", |v: &mut Vectors, w: &str| v.0.contains(w));
    e.register_fn(
        "nearest",
        |v: &mut Vectors, w: &str, k: INT| -> RResult<Array> {
            Ok(ranked(
                v.0.most_similar(&[w], &[], count(k, "nearest: k")?)
                    .map_err(err)?,
            ))
        },
    );
    e.register_fn(
        "analogy",
        |v: &mut Vectors, a: &str, minus: &str, plus: &str, k: INT| -> RResult<Array> {
            let k = count(k, "analogy: k")?;
            Ok(ranked(
                v.0.most_similar(&[a, plus], &[minus], k).map_err(err)?,
            ))
        },
    );
    e.register_fn(
        "most_similar",
        |v: &mut Vectors, pos: Array, neg: Array, k: INT| -> RResult<Array> {
            let (pos, neg) = (
                word_list(&pos, "most_similar")?,
                word_list(&neg, "most_similar")?,
            );
            let pos: Vec<&str> = pos.iter().map(String::as_str).collect();
            let neg: Vec<&str> = neg.iter().map(String::as_str).collect();
            let k = count(k, "most_similar: k")?;
            Ok(ranked(v.0.most_similar(&pos, &neg, k).map_err(err)?))
        },
    );
    e.register_fn(
        "similarity",
        |v: &mut Vectors, a: &str, b: &str| -> RResult<FLOAT> {
            Ok(v.0.similarity(a, b).map_err(err)? as FLOAT)
        },
    );
    e.register_fn(
        "vectors_of",
        |v: &mut Vectors, words: Array| -> RResult<Tensor> {
            let w = word_list(&words, "vectors_of")?;
            let w: Vec<&str> = w.iter().map(String::as_str).collect();
            v.0.matrix(&w).map_err(err)
        },
    );
    let h = host.clone();
    e.register_fn(
        "evaluate_analogies",
        move |v: &mut Vectors, path: &str| -> RResult<Map> {
            let p = h.borrow().readable(path)?;
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("evaluate_analogies: cannot read {path}: {e}"))?;
            Ok(analogy_map(&v.0.evaluate_analogies(&text).map_err(err)?))
        },
    );
    let h = host.clone();
    e.register_fn(
        "save_word_vectors",
        move |v: &mut Vectors, path: &str| -> RResult<()> {
            let p = h.borrow().writable(path)?;
            v.0.save_text(p, None).map_err(err)
        },
    );
    let h = host.clone();
    e.register_fn(
        "save_word_vectors",
        move |v: &mut Vectors, path: &str, limit: INT| -> RResult<()> {
            let p = h.borrow().writable(path)?;
            v.0.save_text(p, Some(count(limit, "save_word_vectors: limit")?))
                .map_err(err)
        },
    );
    let h = host.clone();
    e.register_fn("load_word_vectors", move |path: &str| -> RResult<Vectors> {
        let p = h.borrow().readable(path)?;
        Ok(Vectors(Rc::new(WordVectors::load_text(p).map_err(err)?)))
    });
    let h = host;
    e.register_fn("load_chars", move |path: &str| -> RResult<Map> {
        let p = h.borrow().readable(path)?;
        let text = engine::text::corpus::read_text(&p).map_err(err)?;
        let (ids, chars) = engine::text::char_ids(&text).map_err(err)?;
        let mut m = Map::new();
        m.insert("ids".into(), Dynamic::from(ids));
        m.insert(
            "chars".into(),
            chars
                .into_iter()
                .map(|c| Dynamic::from(c.to_string()))
                .collect::<Array>()
                .into(),
        );
        Ok(m)
    });
    e.register_fn("pca", |x: Tensor, k: INT| -> RResult<Pca> {
        Pca::fit(&x, count(k, "pca: k")?).map_err(err)
    });
    e.register_fn("transform", |p: &mut Pca, x: Tensor| -> RResult<Tensor> {
        p.transform(&x).map_err(err)
    });
    e.register_fn(
        "inverse_transform",
        |p: &mut Pca, z: Tensor| -> RResult<Tensor> { p.inverse_transform(&z).map_err(err) },
    );
    e.register_get("components", |p: &mut Pca| p.components.clone());
    e.register_get("mean", |p: &mut Pca| p.mean.clone());
    e.register_get("explained_ratio", |p: &mut Pca| -> Array {
        p.explained_ratio
            .iter()
            .map(|&r| (r as FLOAT).into())
            .collect()
    });
}
