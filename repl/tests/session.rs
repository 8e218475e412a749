//! Sessions without a terminal: errors with file and line, help for every bound function, the
//! sandbox, the operation limit, :save and :export round trips, state kept across failures.

use notebook::lesson;
use notebook::render::term::Style;
use notebook::script::{self, Output};
use notebook::session::Session;

fn session(text: &str) -> Session {
    let l = lesson::parse(text, "tutorials/t.rhai").unwrap();
    Session::new(l, "tutorials/t.rhai", false, false, Style::plain())
}

#[test]
fn every_bound_function_is_documented() {
    let s = session("// %%\n1\n");
    let _ = s;
    let host = std::rc::Rc::new(std::cell::RefCell::new(script::Host::new(
        false,
        false,
        Style::plain(),
        std::path::Path::new("."),
    )));
    let engine = script::build_engine(host);
    let mut missing = std::collections::BTreeSet::new();
    for sig in engine.gen_fn_signatures(false) {
        let name = sig
            .split('(')
            .next()
            .unwrap_or("")
            .trim()
            .trim_start_matches("fn ")
            .trim();
        let internal = name.is_empty()
            || !name.chars().next().unwrap().is_alphabetic()
            || name.starts_with("get$")
            || name.starts_with("index$")
            || name == "to_string"
            || name == "to_debug";
        if !internal && script::help::find(name).is_none() {
            missing.insert(name.to_string());
        }
    }
    assert!(missing.is_empty(), "functions without help(): {missing:?}");
    for e in script::help::HELP {
        assert!(
            !e.doc.is_empty() && !e.example.is_empty() && e.signature.contains(e.name),
            "incomplete help for {}",
            e.name
        );
    }
}

#[test]
fn errors_name_the_file_line_and_op() {
    let mut s = session(
        "// %% setup\nlet a = ones([2, 3]);\n\n// %% mistake\nlet ok = 1;\nlet b = a.matmul(a);\n",
    );
    assert!(s.run_cell(0).unwrap().error.is_none());
    let e = s.run_cell(1).unwrap().error.unwrap();
    assert_eq!(e, "tutorials/t.rhai:6: matmul: cannot multiply [2, 3] by [2, 3]: inner dimensions 3 and 2 differ");
    // The session goes on, with its variables.
    let r = s.run_user("a.shape");
    assert_eq!(r.value.as_deref(), Some("[2, 3]"));
    let e = s.run_user("let x = ;").error.unwrap();
    assert!(e.starts_with("line 1: syntax error"), "{e}");
    let e = s.run_user("undefined_thing + 1").error.unwrap();
    assert!(e.contains("undefined_thing"), "{e}");
    let e = s.run_user("tensor([1, 2]).reshape([3])").error.unwrap();
    assert_eq!(
        e,
        "line 1: reshape: cannot reshape [2] (2 elements) into [3] (3 elements)"
    );
    let e = s.run_user("load_csv(\"nope.csv\")").error.unwrap();
    assert!(e.contains("no file nope.csv"), "{e}");
}

#[test]
fn syntax_errors_in_a_lesson_are_found_before_it_runs() {
    let s = session("// %% a\nlet a = 1;\n// %% b\nlet b = (1 + ;\n");
    let e = s.check_syntax().unwrap_err();
    assert!(e.starts_with("tutorials/t.rhai:4: syntax error"), "{e}");
}

#[test]
fn functions_and_variables_persist_across_cells() {
    let mut s = session("// %%\nfn double(x) { x * 2 }\nlet k = 5;\n// %%\ndouble(k)\n");
    s.run_cell(0);
    assert_eq!(s.run_cell(1).unwrap().value.as_deref(), Some("10"));
    assert!(s.vars().iter().any(|(n, _, v)| n == "k" && v == "5"));
    s.restart();
    assert!(s.run_user("k").error.is_some());
}

#[test]
fn the_sandbox_keeps_scripts_in_their_folders() {
    let mut s = session("// %%\n1\n");
    let e = s.run_user("load_csv(\"/etc/passwd\")").error.unwrap();
    assert!(e.contains("not allowed"), "{e}");
    let e = s
        .run_user("save_checkpoint(sequential([linear(1, 1)]), \"/tmp/x.safetensors\")")
        .error
        .unwrap();
    assert!(
        e.contains("not allowed") || e.contains("does not exist"),
        "{e}"
    );
    // Rhai itself has no file or process access: these functions do not exist.
    assert!(s.run_user("open_file(\"/etc/passwd\")").error.is_some());
}

#[test]
fn a_tensor_too_big_for_memory_is_refused_and_the_session_goes_on() {
    let mut s = session("// %%\n1\n");
    let e = s
        .run_user("let big = zeros([100000, 100000]);")
        .error
        .unwrap();
    assert!(
        e.contains("would need 37.3 GiB, more than the memory cap"),
        "{e}"
    );
    let e = s
        .run_user("ones([100000, 1]).matmul(ones([1, 100000]))")
        .error
        .unwrap();
    assert!(
        e.contains("matmul: a result of shape [100000, 100000] would need 37.3 GiB"),
        "{e}"
    );
    assert_eq!(s.run_user("1 + 1").value.as_deref(), Some("2"));
}

#[test]
fn impossible_layer_sizes_are_refused_and_the_session_goes_on() {
    let mut s = session("// %%\n1\n");
    let cases = [
        (
            "conv2d(3, 8, -1)",
            "conv2d: kernel size must be a whole number from 1 to 16777216, got -1",
        ),
        (
            "linear(0, 4)",
            "linear: inputs must be a whole number from 1 to 16777216, got 0",
        ),
        (
            "linear(200000, 200000)",
            "linear: a result of shape [200000, 200000] would need 149.0 GiB",
        ),
        (
            "embedding(-5, 3)",
            "embedding: count must be a whole number",
        ),
        (
            "one_hot(floats([1.0]), 0)",
            "one_hot: the number of classes must be positive",
        ),
        (
            "playground(#{n: 1e12})",
            "playground: n (the number of points) must be between 2 and 1,000,000",
        ),
        (
            "playground_data(\"xor\", -3, 0.0, 0)",
            "playground_data: n (the number of points)",
        ),
        ("attention(8, 3, true)", "3 heads do not divide the width 8"),
    ];
    for (code, want) in cases {
        let e = s
            .run_user(code)
            .error
            .unwrap_or_else(|| panic!("{code} should fail"));
        assert!(e.contains(want), "{code}: {e}");
    }
    assert_eq!(
        s.run_user("linear(2, 3).num_params()").value.as_deref(),
        Some("9")
    );
}

#[test]
fn an_operation_limit_stops_an_endless_loop() {
    let mut s = session("// %%\nlet n = 0;\nloop { n += 1; }\n");
    s.max_operations = 100_000;
    let e = s.run_cell(0).unwrap().error.unwrap();
    assert!(e.contains("operation limit"), "{e}");
    assert!(s.run_user("n > 0").value.as_deref() == Some("true"));
}

#[test]
fn checks_are_counted() {
    let mut s =
        session("// %%\ncheck(1 < 2, \"one is less than two\");\ncheck(false, \"this fails\");\n");
    let r = s.run_cell(0).unwrap();
    assert_eq!(
        r.outputs,
        vec![
            Output::Check {
                passed: true,
                message: "one is less than two".into()
            },
            Output::Check {
                passed: false,
                message: "this fails".into()
            }
        ]
    );
    assert_eq!(
        (s.host.borrow().checks_passed, s.host.borrow().checks_failed),
        (1, 1)
    );
}

#[test]
fn save_and_export_keep_everything() {
    let mut s = session("// %% [markdown] Intro\n// # Title\n// %% Code\nlet t = tensor([1.0, 2.0]);\nplot(t.to_list());\n");
    s.run_cell(0);
    s.run_cell(1);
    s.run_user("print(t.sum())");
    let text = s.to_lesson_text();
    let back = lesson::parse(&text, "saved.rhai").unwrap();
    assert_eq!(back.cells.len(), 3);
    assert_eq!(back.cells[2].title.as_deref(), Some("your code"));
    assert_eq!(back.cells[2].source, "print(t.sum())");
    let html = s.to_html();
    assert!(
        html.contains("<h1>Title</h1>")
            && html.contains("<svg")
            && html.contains("polyline")
            && html.contains("tensor(3.0000"),
        "{html}"
    );
}

#[test]
fn the_tour_runs_clean() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tutorials/00_tour.rhai"
    ));
    let o = notebook::runner::run_file(path, Style::plain(), 0, None);
    assert!(o.ok(), "{:?}", o.errors);
    assert!(o.checks_passed >= 4);
}
