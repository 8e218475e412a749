//! gradbook's side of the gensim comparison (`benches/gensim/w2v_compare.py`): trains Word2Vec on a
//! corpus, prints words per second, the analogy score and the nearest words to king − man + woman
//! as one JSON line.
//!
//! ```text
//! cargo run --release -p gradbook-engine --example word2vec -- CORPUS QUESTIONS [sg|cbow] [THREADS] [EPOCHS] [OUT.txt]
//! ```
//! The other settings are gensim's defaults used in the comparison: dim 100, window 5, negative 5,
//! min_count 5, sample 1e-3, alpha 0.025 → 0.0001.

use std::ops::ControlFlow;
use std::time::Instant;

use engine::text::{word2vec, Architecture, Corpus, Word2VecConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err(
            "usage: word2vec CORPUS QUESTIONS [sg|cbow] [THREADS] [EPOCHS] [OUT.txt]".into(),
        );
    }
    let arch = match args.get(2).map(String::as_str) {
        None | Some("sg") => Architecture::SkipGram,
        Some("cbow") => Architecture::Cbow,
        Some(other) => return Err(format!("unknown architecture {other}: sg or cbow").into()),
    };
    if let Some(t) = args.get(3) {
        engine::threads::set_num_threads(t.parse()?)?;
    }
    let epochs = args.get(4).map_or(Ok(5), |e| e.parse())?;
    let t0 = Instant::now();
    let corpus = Corpus::from_file(&args[0], 5)?;
    let vocab_seconds = t0.elapsed().as_secs_f64();
    let config = Word2VecConfig {
        architecture: arch,
        epochs,
        ..Word2VecConfig::default()
    };
    let (wv, report) = word2vec::train(&corpus, &config, &|_| ControlFlow::Continue(()))?;
    let questions = std::fs::read_to_string(&args[1])?;
    let analogies = wv.evaluate_analogies(&questions)?;
    let queen = wv.most_similar(&["king", "woman"], &["man"], 5)?;
    if let Some(out) = args.get(5) {
        wv.save_text(out, None)?;
    }
    let family = analogies.sections.iter().find(|s| s.name == "family");
    println!(
        "{}",
        serde_json::json!({
            "tool": "gradbook",
            "architecture": if arch == Architecture::SkipGram { "sg" } else { "cbow" },
            "threads": report.threads,
            "epochs": epochs,
            "corpus_words": corpus.raw_words(),
            "vocab": corpus.vocab.len(),
            "vocab_seconds": vocab_seconds,
            "train_seconds": report.seconds,
            "raw_words_per_s": report.words_per_sec(),
            "effective_words": report.effective_words,
            "analogy_correct": analogies.correct(),
            "analogy_total": analogies.total(),
            "analogy_accuracy": analogies.accuracy(),
            "family_accuracy": family.map(|s| s.correct as f64 / s.total.max(1) as f64),
            "king_man_woman": queen,
        })
    );
    Ok(())
}
