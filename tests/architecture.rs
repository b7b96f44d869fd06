//! The shape of the code, checked: which top-level module uses which
//! (read from the `crate::` paths in `src/`), that the graph has no cycle,
//! and that the protocol core never reaches into the proxy's I/O.
//!
//! `cargo test --test architecture -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The modules that hold protocol decisions and must not use `proxy`.
const NOT_PROXY: &[&str] = &[
    "hooks", "source", "masking", "unlock", "imap", "mask", "detect",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The top-level modules a line of code names through `crate::`.
fn used_in(line: &str) -> Vec<String> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return Vec::new();
    }
    let mut used = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group only: `{a::X, b::{Y, Z}}`.
            let mut depth = 0usize;
            let mut piece = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        used.extend(first_segment(&piece));
                        piece.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    piece.push(c);
                }
            }
            used.extend(first_segment(&piece));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.push(name);
            }
        }
    }
    used
}

fn first_segment(path: &str) -> Option<String> {
    let name = path.trim().split("::").next()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        // Unit tests may reach anywhere; the code may not.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let uses = graph.entry(module.clone()).or_default();
        for line in code.lines() {
            uses.extend(used_in(line).into_iter().filter(|u| *u != module));
        }
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = graph();
    for (module, uses) in &graph {
        let list: Vec<&str> = uses.iter().map(String::as_str).collect();
        println!("{module} -> {}", list.join(", "));
    }
    assert!(graph.len() > 10, "the scan found the modules: {graph:?}");
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_protocol_core_does_not_use_the_proxy() {
    let graph = graph();
    for module in NOT_PROXY {
        let uses = graph
            .get(*module)
            .unwrap_or_else(|| panic!("no module {module}"));
        assert!(!uses.contains("proxy"), "{module} uses crate::proxy");
    }
}

#[test]
fn crate_paths_are_read_in_every_form() {
    assert_eq!(used_in("use crate::imap::syntax;"), ["imap"]);
    assert_eq!(
        used_in("use crate::{audit::X, vault::{Y, Z}};"),
        ["audit", "vault"]
    );
    assert_eq!(
        used_in("let x = crate::mask::plan(crate::detect::D);"),
        ["mask", "detect"]
    );
    assert!(used_in("//! see crate::proxy").is_empty());
}
