//! The house rules of `src/` (ARCHITECTURE.md, "Floors"), read from the source itself:
//!
//! - every `crate::` path (in `use`, in code, in macro bodies) goes to the same module or down a
//!   floor: never up, never sideways between modules of one floor (the adapters `store`,
//!   `backend` and `probe` never import one another), and only `app` uses `testkit`;
//! - no cycle between modules;
//! - no file over 600 lines of non-test code, no function over 80 lines.
//!
//! Test code (`#[cfg(test)]` items and the files of `#[cfg(test)] mod x;`) may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::visit::Visit;

/// The floors, lowest first. A module may use the modules of lower floors.
const FLOORS: &[(&str, u8)] = &[
    ("domain", 0),
    ("testkit", 0),
    ("config", 1),
    ("store", 2),
    ("backend", 2),
    ("probe", 2),
    ("notifier", 2),
    ("jobs", 3),
    ("runner", 4),
    ("scheduler", 5),
    ("api", 6),
    ("control", 6),
    ("app", 7),
];

/// Modules that only the listed ones may use, whatever their floor.
const ONLY_FOR: &[(&str, &[&str])] = &[("testkit", &["app"])];

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

fn floor(module: &str) -> Option<u8> {
    FLOORS.iter().find(|(m, _)| *m == module).map(|(_, f)| *f)
}

/// Why `from` may not use `to`, if it may not.
fn forbidden(from: &str, to: &str) -> Option<String> {
    if from == to || from == "crate root" {
        return None;
    }
    if let Some((_, users)) = ONLY_FOR.iter().find(|(m, _)| *m == to) {
        if !users.contains(&from) {
            return Some(format!("only {users:?} may use `{to}`"));
        }
    }
    match (floor(from), floor(to)) {
        (Some(a), Some(b)) if b < a => None,
        (Some(a), Some(b)) if b == a => Some(format!("`{to}` is beside it on floor {a}")),
        (Some(a), Some(b)) => Some(format!("`{to}` (floor {b}) is above it (floor {a})")),
        (None, _) => Some(format!(
            "`{from}` has no floor; add it to FLOORS and ARCHITECTURE.md"
        )),
        (_, None) => Some(format!(
            "`{to}` has no floor; add it to FLOORS and ARCHITECTURE.md"
        )),
    }
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// What one file holds, outside its test code.
#[derive(Default)]
struct Reading {
    /// (line, module used) for every `crate::` path.
    uses: Vec<(usize, String)>,
    /// (name, first line, lines) of every function.
    functions: Vec<(String, usize, usize)>,
    /// Lines of test items.
    test_lines: usize,
    /// Files of `#[cfg(test)] mod x;`, relative to this file's directory of modules.
    test_modules: Vec<String>,
}

impl Reading {
    fn path(&mut self, path: &syn::Path) {
        let mut segments = path.segments.iter();
        if let (Some(first), Some(second)) = (segments.next(), segments.next()) {
            if first.ident == "crate" {
                let line = first.ident.span().start().line;
                self.uses.push((line, second.ident.to_string()));
            }
        }
    }

    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if id == "crate" => {
                    if let [TokenTree::Punct(a), TokenTree::Punct(b), TokenTree::Ident(next), ..] =
                        &trees[i + 1..]
                    {
                        if a.as_char() == ':' && b.as_char() == ':' {
                            self.uses.push((id.span().start().line, next.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn function(&mut self, name: String, sig: &syn::Signature, block: &syn::Block) {
        let first = sig.fn_token.span.start().line;
        let last = block.brace_token.span.close().end().line;
        self.functions.push((name, first, last - first + 1));
    }
}

impl<'ast> Visit<'ast> for Reading {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_cfg_test(attrs) {
            let span = item.span();
            self.test_lines += span.end().line - span.start().line + 1;
            if let syn::Item::Mod(m) = item {
                if m.content.is_none() {
                    self.test_modules.push(m.ident.to_string());
                }
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if let syn::ImplItem::Fn(f) = item {
            if is_cfg_test(&f.attrs) {
                let span = item.span();
                self.test_lines += span.end().line - span.start().line + 1;
                return;
            }
        }
        syn::visit::visit_impl_item(self, item);
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.function(f.sig.ident.to_string(), &f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.function(f.sig.ident.to_string(), &f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_use_tree(&mut self, tree: &'ast syn::UseTree) {
        fn firsts(tree: &syn::UseTree, out: &mut Vec<(usize, String)>) {
            match tree {
                syn::UseTree::Path(p) => {
                    out.push((p.ident.span().start().line, p.ident.to_string()))
                }
                syn::UseTree::Name(n) => {
                    out.push((n.ident.span().start().line, n.ident.to_string()))
                }
                syn::UseTree::Rename(r) => {
                    out.push((r.ident.span().start().line, r.ident.to_string()))
                }
                syn::UseTree::Group(g) => g.items.iter().for_each(|t| firsts(t, out)),
                syn::UseTree::Glob(_) => {}
            }
        }
        match tree {
            syn::UseTree::Path(p) if p.ident == "crate" => {
                let mut used = Vec::new();
                firsts(&p.tree, &mut used);
                self.uses.extend(used);
            }
            _ => syn::visit::visit_use_tree(self, tree),
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.path(path);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The module a file of `src/` belongs to: its first path component.
fn module_of(relative: &str) -> String {
    match relative.split('/').next().unwrap_or(relative) {
        "lib.rs" | "main.rs" => "crate root".into(),
        first => first.trim_end_matches(".rs").into(),
    }
}

/// Where `mod name;` declared in `file` lives.
fn child_files(file: &str, name: &str) -> [String; 2] {
    let dir = match file.rsplit_once('/') {
        Some((dir, "mod.rs")) => format!("{dir}/"),
        Some((dir, stem)) => format!("{dir}/{}/", stem.trim_end_matches(".rs")),
        None if file == "lib.rs" || file == "main.rs" => String::new(),
        None => format!("{}/", file.trim_end_matches(".rs")),
    };
    [format!("{dir}{name}.rs"), format!("{dir}{name}/mod.rs")]
}

/// Every problem with the files (path relative to `src/`, text), as lines of a report.
fn check(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut readings = BTreeMap::new();
    for (path, text) in files {
        let syntax = match syn::parse_file(text) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("src/{path}: does not parse: {e}"));
                continue;
            }
        };
        let mut reading = Reading::default();
        reading.visit_file(&syntax);
        readings.insert(path.clone(), (reading, text.lines().count()));
    }
    let test_files: BTreeSet<String> = readings
        .iter()
        .flat_map(|(path, (r, _))| r.test_modules.iter().flat_map(|m| child_files(path, m)))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, (reading, lines)) in &readings {
        if test_files.contains(path) {
            continue;
        }
        let from = module_of(path);
        for (line, to) in &reading.uses {
            if let Some(why) = forbidden(&from, to) {
                problems.push(format!("src/{path}:{line}: `{from}` uses `{to}`: {why}"));
            }
            if *to != from {
                graph.entry(from.clone()).or_default().insert(to.clone());
            }
        }
        let code = lines - reading.test_lines;
        if code > MAX_FILE_LINES {
            problems.push(format!(
                "src/{path}: {code} lines of non-test code (at most {MAX_FILE_LINES}); split it"
            ));
        }
        for (name, line, length) in &reading.functions {
            if *length > MAX_FN_LINES {
                problems.push(format!(
                    "src/{path}:{line}: fn {name} has {length} lines (at most {MAX_FN_LINES})"
                ));
            }
        }
    }
    problems.extend(cycles(&graph));
    problems
}

/// The cycles of module uses, one line each.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn walk(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut BTreeSet<String>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            found.insert(format!("a cycle of module uses: {}", cycle.join(" → ")));
            return;
        }
        if !done.insert(node.to_string()) {
            return;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            walk(next, graph, stack, done, found);
        }
        stack.pop();
    }
    let mut found = BTreeSet::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        walk(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found.into_iter().collect()
}

fn read_tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn src_keeps_its_floors_and_sizes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    assert!(
        files.len() > 30,
        "read {} files of {}",
        files.len(),
        src.display()
    );
    for (module, _) in FLOORS {
        assert!(
            files.keys().any(|p| module_of(p) == *module),
            "FLOORS names `{module}`, which src/ does not have"
        );
    }
    let problems = check(&files);
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// The checker itself finds each kind of problem (so a passing run above means something).
#[test]
fn the_checker_finds_upward_sideways_cycles_and_long_code() {
    let tree = |files: &[(&str, &str)]| -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    };
    let fine = tree(&[
        ("domain/mod.rs", "pub mod peer; #[cfg(test)] mod tests;"),
        ("domain/peer.rs", "pub struct Peer;"),
        // Test code may use anything.
        ("domain/tests.rs", "use crate::app::cli;"),
        (
            "store/mod.rs",
            "use crate::domain::peer::Peer; fn f() { crate::domain::x(); }",
        ),
        ("app/mod.rs", "use crate::{store, testkit::LocalNode};"),
        ("testkit/mod.rs", "pub struct LocalNode;"),
        (
            "jobs/mod.rs",
            "use crate::store::Store; #[cfg(test)] mod tests { use crate::runner::Runner; }",
        ),
    ]);
    assert_eq!(check(&fine), Vec::<String>::new());

    let upward = tree(&[("domain/peer.rs", "use crate::store::Store;")]);
    let found = check(&upward);
    assert!(
        found[0].contains("`domain` uses `store`") && found[0].contains("above"),
        "{found:?}"
    );

    let in_code = tree(&[("config/mod.rs", "fn f() { let _ = crate::jobs::run(); }")]);
    assert!(check(&in_code)[0].contains("`config` uses `jobs`"));

    let in_macro = tree(&[(
        "domain/time.rs",
        "fn f() { println!(\"{}\", crate::api::X); }",
    )]);
    assert!(check(&in_macro)[0].contains("`domain` uses `api`"));

    let sideways = tree(&[("store/mod.rs", "use crate::{domain::Peer, probe::Target};")]);
    let found = check(&sideways);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("`store` uses `probe`") && found[0].contains("beside"));

    let testkit = tree(&[("probe/mod.rs", "use crate::testkit::free_port;")]);
    assert!(check(&testkit)[0].contains("only [\"app\"] may use `testkit`"));

    let unknown = tree(&[("util.rs", "use crate::domain::Peer;")]);
    assert!(check(&unknown)[0].contains("`util` has no floor"));

    let cycle = tree(&[
        ("api/mod.rs", "use crate::control::x;"),
        ("control.rs", "use crate::api::y;"),
    ]);
    assert!(check(&cycle)
        .iter()
        .any(|p| p.contains("cycle") && p.contains("api → control → api")));

    let body = "    let x = 1;\n".repeat(MAX_FN_LINES - 1);
    let long_fn = format!("impl S {{\n    fn long() {{\n{body}    }}\n}}\n");
    let found = check(&tree(&[("domain/x.rs", &long_fn)]));
    assert!(found[0].contains("fn long has 81 lines"), "{found:?}");
    let ok_fn = format!(
        "fn short() {{\n{}}}\n",
        "    let x = 1;\n".repeat(MAX_FN_LINES - 2)
    );
    assert!(check(&tree(&[("domain/x.rs", &ok_fn)])).is_empty());

    let big = "const X: u8 = 1;\n".repeat(MAX_FILE_LINES + 1);
    assert!(check(&tree(&[("domain/x.rs", &big)]))[0].contains("601 lines of non-test code"));
    let tested = format!(
        "{}#[cfg(test)]\nmod tests {{\n{big}}}\n",
        "const Y: u8 = 1;\n".repeat(10)
    );
    assert!(check(&tree(&[("domain/x.rs", &tested)])).is_empty());
}
