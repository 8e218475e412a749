//! Every wrong thing a learner may type, through the notebook's scripting: each gives an error that
//! names the cause, and the session goes on with its variables intact. (The engine-level twins of
//! these are in the root `tests/errors.rs`.)

use std::path::PathBuf;

use notebook::lesson;
use notebook::render::term::Style;
use notebook::session::Session;

/// A session whose lesson sits in a fresh folder under the current directory (so scripts may
/// read and write there), with a variable defined to check that nothing is lost.
struct Fixture {
    session: Session,
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = std::env::current_dir()
            .unwrap()
            .join(format!("target-bad-input-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.rhai");
        let text = "// %%\nlet keep = 41;\n";
        std::fs::write(&file, text).unwrap();
        let l = lesson::parse(text, file.to_str().unwrap()).unwrap();
        let mut session = Session::new(l, file.to_str().unwrap(), false, false, Style::plain());
        session.run_cell(0);
        Fixture { session, dir }
    }

    /// A file in the fixture's folder, as a path scripts can use.
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Runs `code`, expects an error containing every one of `parts`, then checks the session.
    fn refuses(&mut self, code: &str, parts: &[&str]) {
        let ran = self.session.run_user(code);
        let e = ran
            .error
            .unwrap_or_else(|| panic!("`{code}` should have failed, gave {:?}", ran.value));
        println!("{code}\n    -> {e}");
        for p in parts {
            assert!(
                e.contains(p),
                "`{code}`: error `{e}` does not mention `{p}`"
            );
        }
        let after = self.session.run_user("keep + 1");
        assert_eq!(
            after.value.as_deref(),
            Some("42"),
            "after `{code}` the session lost its state: {:?}",
            after.error
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn shape_axis_and_index_errors_in_every_op_family() {
    let mut f = Fixture::new("ops");
    let cases: &[(&str, &[&str])] = &[
        ("ones([2, 3]) + ones([4])", &["add", "[2, 3]", "[4]"]),
        ("ones([2, 3]) * ones([3, 2])", &["mul", "[2, 3]", "[3, 2]"]),
        (
            "ones([2, 3]).matmul(ones([4, 5]))",
            &["matmul", "[2, 3]", "[4, 5]"],
        ),
        ("ones([2, 3]).sum(5)", &["sum", "axis", "5"]),
        ("ones([2, 3]).mean([0, 7])", &["mean", "axis"]),
        ("ones([2, 3]).reshape([4])", &["reshape", "[2, 3]"]),
        ("ones([2, 3]).permute([0, 0])", &["permute"]),
        ("ones([2, 3]).select(0, 7)", &["select", "7"]),
        ("ones([2, 3]).narrow(1, 2, 5)", &["narrow"]),
        (
            "ones([2, 3]).index_select(0, [0, 9])",
            &["index_select", "9"],
        ),
        ("ones([2]).softmax(3)", &["softmax", "axis"]),
        (
            "concat([ones([2, 3]), ones([2, 4])], 0)",
            &["concat", "[2, 3]", "[2, 4]"],
        ),
        (
            "ones([2, 3]).broadcast_to([4, 4])",
            &["broadcast", "[2, 3]"],
        ),
        (
            "conv2d(ones([1, 1, 5, 5]), ones([2, 3, 3, 3]))",
            &["conv2d", "channels"],
        ),
        ("tensor([[1, 2], [3]])", &["ragged"]),
        ("zeros([2, -3])", &["shape"]),
    ];
    for (code, parts) in cases {
        f.refuses(code, parts);
    }
}

#[test]
fn wrong_data_for_a_layer_or_loss() {
    let mut f = Fixture::new("layers");
    let cases: &[(&str, &[&str])] = &[
        ("linear(4, 2).forward(ones([3, 5]))", &["[3, 5]", "4"]),
        ("conv2d(1, 4, 3).forward(ones([2, 3, 8, 8]))", &["[2, 3, 8, 8]"]),
        ("conv2d(1, 4, 3).forward(ones([8, 8]))", &["[8, 8]"]),
        ("maxpool2d(4).forward(ones([1, 1, 2, 2]))", &["pool"]),
        ("embedding(5, 2).forward(tensor([7.0]))", &["Embedding", "7"]),
        ("embedding(5, 2).forward(tensor([1.5]))", &["Embedding"]),
        ("cross_entropy(ones([4, 3]), tensor([0, 1]))", &["cross_entropy"]),
        ("cross_entropy(ones([2, 3]), tensor([0, 5]))", &["cross_entropy", "5"]),
        ("bce_loss(tensor([2.0]), tensor([1.0]))", &["binary_cross_entropy", "probabilities", "sigmoid"]),
        ("mse_loss(ones([3]), ones([4]))", &["mse", "[3]", "[4]"]),
        ("linear(4, 2).forward(\"hello\")", &["forward"]),
        ("let m = linear(2, 1); fit(m, sgd(m, 0.1), \"no_such_loss\", dataset(ones([4, 2]), ones([4, 1])), #{})", &["no_such_loss"]),
        ("dataset(ones([4, 2]), ones([3, 1]))", &["4", "3"]),
        ("sequential([linear(2, 3), linear(4, 1)]).forward(ones([1, 2]))", &["[1, 3]"]),
    ];
    for (code, parts) in cases {
        f.refuses(code, parts);
    }
}

#[test]
fn training_that_blows_up_says_where_and_why() {
    let mut f = Fixture::new("nan");
    f.refuses(
        "let m = sequential([linear(2, 8), relu(), linear(8, 1)]);
         let d = dataset(randn([64, 2]) * 1000.0, randn([64, 1]) * 1000.0);
         fit(m, sgd(m, 1000.0), \"mse\", d, #{epochs: 20, plot: false})",
        &["epoch", "learning rate"],
    );
}

#[test]
fn bad_data_files() {
    let mut f = Fixture::new("data");
    let missing = f.dir.join("missing.csv").to_str().unwrap().to_string();
    let empty = f.file("empty.csv", b"");
    let ragged = f.file("ragged.csv", b"a,b,label\n1,2,0\n3,1\n");
    let words = f.file("words.csv", b"a,b,label\n1,x,0\n");
    let no_label = f.file("nolabel.csv", b"a,b\n1,2\n");
    let images = f.file(
        "images.idx",
        &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3],
    );
    let labels = f.file("labels.idx", &[0, 0, 8, 1, 0, 0, 0, 2, 1, 2]);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("load_csv(\"{missing}\")"),
            vec!["no file", "missing.csv"],
        ),
        (format!("load_csv(\"{empty}\")"), vec!["empty.csv", "empty"]),
        (
            format!("load_csv(\"{ragged}\")"),
            vec!["ragged.csv", "line 3"],
        ),
        (
            format!("load_csv(\"{words}\")"),
            vec!["words.csv", "line 2", "x"],
        ),
        (format!("load_csv(\"{no_label}\")"), vec!["label"]),
        (
            format!("load_idx(\"{images}\", \"{labels}\")"),
            vec!["images.idx"],
        ),
        (format!("load_corpus(\"{empty}\")"), vec!["corpus"]),
        (
            "load_word_vectors(\"/etc/passwd\")".into(),
            vec!["not allowed"],
        ),
    ];
    for (code, parts) in &cases {
        f.refuses(code, parts);
    }
}

#[test]
fn bad_checkpoints_are_refused_and_the_model_is_unchanged() {
    let mut f = Fixture::new("ckpt");
    let good = f.dir.join("good.safetensors").to_str().unwrap().to_string();
    let ran = f.session.run_user(&format!(
        "manual_seed(1); let m = sequential([linear(3, 2)]); save_checkpoint(m, \"{good}\"); let w0 = m.named_parameters()[\"0.weight\"].to_list(); let other = sequential([linear(3, 4)]); save_checkpoint(other, \"{}\"); manual_seed(2); let fresh = sequential([linear(3, 2)]); fresh.named_parameters()[\"0.weight\"].to_list()",
        f.dir.join("other.safetensors").display()
    ));
    assert!(ran.error.is_none(), "{:?}", ran.error);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = f.file("truncated.safetensors", &bytes[..bytes.len() - 7]);
    // A header that claims a much larger size than the file holds.
    let mut lying = bytes.clone();
    lying[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let lying = f.file("lying.safetensors", &lying);
    let garbage = f.file("garbage.safetensors", b"not a checkpoint at all");
    let missing = f.dir.join("missing.safetensors").display().to_string();
    let other = f.dir.join("other.safetensors").display().to_string();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("load_checkpoint(m, \"{missing}\")"),
            vec!["missing.safetensors"],
        ),
        (
            format!("load_checkpoint(m, \"{truncated}\")"),
            vec!["truncated.safetensors"],
        ),
        (
            format!("load_checkpoint(m, \"{lying}\")"),
            vec!["lying.safetensors"],
        ),
        (
            format!("load_checkpoint(m, \"{garbage}\")"),
            vec!["garbage.safetensors"],
        ),
        (
            format!("load_checkpoint(m, \"{other}\")"),
            vec!["0.weight", "[4, 3]", "[2, 3]"],
        ),
        (
            format!(
                "load_checkpoint(sequential([linear(3, 2), relu(), linear(2, 2)]), \"{good}\")"
            ),
            vec!["2.weight"],
        ),
    ];
    for (code, parts) in &cases {
        f.refuses(code, parts);
        let same = f
            .session
            .run_user("m.named_parameters()[\"0.weight\"].to_list() == w0");
        assert_eq!(
            same.value.as_deref(),
            Some("true"),
            "`{code}` changed the model"
        );
    }
}

#[test]
fn runaway_scripts_stop_at_the_operation_limit() {
    let mut f = Fixture::new("loop");
    f.session.max_operations = 200_000;
    f.refuses("loop { }", &["operation limit"]);
    f.refuses("let a = []; loop { a.push(1); }", &["operation limit"]);
}
