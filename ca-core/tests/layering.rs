//! The layering rule: the pure layers (`ca-x509` in `ca-core/x509/`, the X.509 layer, and
//! `ca-acme` in `ca-core/acme/`, ACME's messages) build without storage, async runtime or
//! thread pools, and no module of these crates or of `ca-core` depends, through a chain of
//! others, on itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates the pure layer must never pull in, directly or through a dependency.
const FORBIDDEN_IN_PURE_LAYER: &[&str] = &[
    "rocksdb",
    "librocksdb-sys",
    "tokio",
    "rayon",
    "rayon-core",
    "crossbeam-channel",
    "crossbeam-utils",
    "postcard",
    "prometheus",
];

#[test]
fn the_pure_layers_have_no_storage_runtime_or_pool_dependency() {
    for (layer, marker) in [("ca-x509", "x509-cert"), ("ca-acme", "serde_json")] {
        let crates = normal_dependencies(layer);
        assert!(
            crates.contains(layer) && crates.contains(marker),
            "{crates:?}"
        );
        let found: Vec<&&str> = FORBIDDEN_IN_PURE_LAYER
            .iter()
            .filter(|c| crates.contains(**c))
            .collect();
        assert!(
            found.is_empty(),
            "{layer} depends on {found:?}; `cargo tree -p {layer} -e normal -i {}` shows the path",
            found.first().map_or("", |c| **c)
        );
    }
}

/// The crates `package` builds with (`cargo tree -e normal`), itself included.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", package, "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn no_module_depends_on_itself() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for src in [
        root.join("x509/src"),
        root.join("acme/src"),
        root.join("src"),
    ] {
        let graph = module_graph(&src);
        assert!(graph.len() >= 5, "modules of {}: {graph:?}", src.display());
        if let Some(cycle) = find_cycle(&graph) {
            panic!("a module cycle in {}: {}", src.display(), cycle.join(" → "));
        }
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let cyclic = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("a", "c"), ("b", "c")])),
        None
    );
    assert_eq!(
        references(
            "use crate::{a, b::c};\nlet x = crate::d::e();\n// crate::f\n#[cfg(test)]\ncrate::g"
        ),
        ["a", "b", "d"].map(String::from).into_iter().collect()
    );
}

/// Each top-level module of the crate whose sources are in `src` (a file `m.rs`, or a
/// directory `m/` with its files), with the modules its code outside `#[cfg(test)]` names as
/// `crate::m`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let path = entry.expect("entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "lib" {
            continue;
        }
        let files: Vec<PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path)
                .expect("read_dir")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                .collect()
        } else {
            vec![path.clone()]
        };
        let mut uses = BTreeSet::new();
        for file in files {
            uses.extend(references(&std::fs::read_to_string(&file).expect("read")));
        }
        uses.remove(stem);
        graph.insert(stem.to_string(), uses);
    }
    graph
}

/// The first segments of the `crate::` paths in `code`, up to its first `#[cfg(test)]`, in
/// lines that are not comments.
fn references(code: &str) -> BTreeSet<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    found.insert(first_segment(item.trim()));
                }
            } else {
                found.insert(first_segment(rest));
            }
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// A cycle of `graph` (its first module repeated at the end), if there is one. Edges to
/// names that are not modules of the graph (re-exports, items of `lib.rs`) are ignored.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next) {
                if let Some(cycle) = visit(next, graph, path, done) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
