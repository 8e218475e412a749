#!/usr/bin/env python3
"""gradbook's Word2Vec against gensim's on the same corpus, tokenisation, settings and machine.

    python3 benches/gensim/w2v_compare.py [--threads 1,2] [--arch sg,cbow] [--epochs 5] [--rounds 1]

Needs `pip install gensim`. Settings (both tools): dim 100, window 5, negative 5, min_count 5,
sample 1e-3, alpha 0.025 -> 0.0001, `--epochs` epochs. Tokens are runs of ASCII letters after
lower-casing, one sentence per line: the regular expression `[a-z]+`, exactly what
`engine::text::corpus` does. gradbook and gensim runs alternate, so both see the same machine
load. Words per second are raw corpus words (every token, before min_count and subsampling)
divided by training time, as gensim reports them. Analogy accuracy is on the questions of
`questions-words.txt` whose four words are all in the vocabulary, answered by the 3CosAdd rule.
"""
import argparse, gzip, json, os, re, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tutorials", "data")


def gensim_run(sentences, raw_words, questions, arch, threads, epochs):
    from gensim.models import Word2Vec
    m = Word2Vec(vector_size=100, window=5, negative=5, hs=0, min_count=5, sample=1e-3, sg=1 if arch == "sg" else 0,
                 workers=threads, seed=1, alpha=0.025, min_alpha=0.0001)
    m.build_vocab(sentences)
    t0 = time.perf_counter()
    m.train(sentences, total_examples=len(sentences), epochs=epochs)
    dt = time.perf_counter() - t0
    score, sections = m.wv.evaluate_word_analogies(questions, case_insensitive=True)
    total = [s for s in sections if s["section"] == "Total accuracy"][0]
    return {"tool": "gensim", "architecture": arch, "threads": threads, "epochs": epochs, "vocab": len(m.wv),
            "train_seconds": dt, "raw_words_per_s": raw_words * epochs / dt,
            "analogy_correct": len(total["correct"]), "analogy_total": len(total["correct"]) + len(total["incorrect"]),
            "analogy_accuracy": score,
            "king_man_woman": m.wv.most_similar(positive=["king", "woman"], negative=["man"], topn=5)}


def gradbook_run(corpus, questions, arch, threads, epochs):
    exe = os.path.join(ROOT, "target", "release", "examples", "word2vec")
    out = subprocess.run([exe, corpus, questions, arch, str(threads), str(epochs)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--arch", default="sg,cbow")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--corpus", default=os.path.join(DATA, "english_pd_corpus.txt.gz"))
    ap.add_argument("--questions", default=os.path.join(DATA, "questions-words.txt"))
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "gradbook-engine", "--example", "word2vec"], cwd=ROOT, check=True)
    word = re.compile(r"[a-z]+")
    opener = gzip.open if a.corpus.endswith(".gz") else open
    with opener(a.corpus, "rt", encoding="utf-8") as f:
        sentences = [s for s in (word.findall(line.lower()) for line in f) if s]
    raw_words = sum(len(s) for s in sentences)
    rows = []
    for r in range(a.rounds):
        for arch in a.arch.split(","):
            for t in map(int, a.threads.split(",")):
                g = gradbook_run(a.corpus, a.questions, arch, t, a.epochs)
                p = gensim_run(sentences, raw_words, a.questions, arch, t, a.epochs)
                for x in (g, p):
                    print(json.dumps(x), file=sys.stderr, flush=True)
                rows.append((arch, t, g, p))
    print(f"\n{'arch':5} {'thr':>3} | {'gradbook w/s':>12} {'gensim w/s':>12} {'ratio':>6} | "
          f"{'gradbook acc':>12} {'gensim acc':>10} | king-man+woman (gradbook / gensim)")
    for arch, t, g, p in rows:
        top = lambda x: ",".join(w for w, _ in x["king_man_woman"][:5])
        print(f"{arch:5} {t:3d} | {g['raw_words_per_s']:12.0f} {p['raw_words_per_s']:12.0f} "
              f"{g['raw_words_per_s'] / p['raw_words_per_s']:6.2f} | {g['analogy_accuracy'] * 100:11.1f}% "
              f"{p['analogy_accuracy'] * 100:9.1f}% | {top(g)} / {top(p)}")


if __name__ == "__main__":
    main()
