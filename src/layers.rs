//! The dependency rule, checked on the sources: every top-level module uses
//! only the modules below it in [`LAYERS`], so dependencies run one way and
//! no two modules depend on each other; and the core does no logging and
//! uses no tokio. Test code (files behind `#[cfg(test)] mod`, and the
//! `#[cfg(test)] mod tests` at the end of a file) may use anything.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The modules from the bottom up, each with the ones it may use (all of
/// them listed before it).
const LAYERS: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("resp", &["core"]),
    ("failpoint", &[]),
    ("links", &["core", "resp"]),
    ("consensus", &["core", "links", "failpoint"]),
    ("config", &["core", "links", "consensus"]),
    ("observe", &["core", "config"]),
    (
        "pod",
        &["core", "resp", "links", "consensus", "config", "observe"],
    ),
    (
        "server",
        &[
            "core",
            "resp",
            "links",
            "config",
            "consensus",
            "observe",
            "pod",
        ],
    ),
    (
        "k8s",
        &["core", "resp", "consensus", "config", "pod", "server"],
    ),
    (
        "runtime",
        &[
            "core",
            "resp",
            "links",
            "consensus",
            "config",
            "observe",
            "server",
            "pod",
            "failpoint",
        ],
    ),
    ("cli", &["pod"]),
    ("demo", &["resp"]),
];

/// What the core may not name at all: it has no I/O, no clock, no threads,
/// no logging (parsing an IP literal with `std::net::IpAddr` is fine).
const NOT_IN_CORE: &[&str] = &[
    "tracing::",
    "tokio::",
    "std::time::",
    "std::fs",
    "std::net::Tcp",
    "std::net::Udp",
    "ToSocketAddrs",
    "std::process",
    "std::thread",
    "std::env",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The files and module folders declared as `#[cfg(test)] mod name;`
/// anywhere in `src/`.
fn test_only_paths(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for f in files {
        let text = fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for w in lines.windows(2) {
            let Some(name) = w[1].strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            if w[0] != "#[cfg(test)]" {
                continue;
            }
            let name = name.trim();
            let stem = f.file_stem().unwrap().to_string_lossy();
            let parent = f.parent().unwrap();
            let dir = if ["mod", "lib", "main"].contains(&stem.as_ref()) {
                parent.to_path_buf()
            } else {
                parent.join(stem.as_ref())
            };
            out.insert(dir.join(format!("{name}.rs")));
            out.insert(dir.join(name));
        }
    }
    out
}

/// A file's code without comments and without its trailing test module.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut prev = "";
    for line in text.lines() {
        let t = line.trim();
        let tests_mod = ["mod tests", "pub mod tests", "pub(crate) mod tests"];
        if prev == "#[cfg(test)]" && tests_mod.iter().any(|m| t.starts_with(m)) {
            break;
        }
        prev = t;
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level module a file belongs to (`src/core/x.rs` -> `core`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules `code` names as `crate::<module>`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
        // `use crate::{a, b::c}`
        if let Some(list) = rest.strip_prefix('{') {
            let list = &list[..list.find('}').unwrap_or(list.len())];
            for item in list.split(',') {
                let item: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !item.is_empty() {
                    out.insert(item);
                }
            }
        }
    }
    out
}

#[test]
fn dependencies_run_one_way() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let tests = test_only_paths(&files);
    let mut wrong = Vec::new();
    for f in &files {
        let m = module_of(f);
        let shown = f.strip_prefix(src()).unwrap().display();
        let test_only = tests.iter().any(|t| f.starts_with(t));
        if test_only || ["lib", "main", "layers", "testutil"].contains(&m.as_str()) {
            continue;
        }
        let Some((_, allowed)) = LAYERS.iter().find(|(name, _)| *name == m) else {
            wrong.push(format!("{shown}: module {m} is not in LAYERS"));
            continue;
        };
        let code = production_code(&fs::read_to_string(f).unwrap());
        for used in uses(&code) {
            if used != m && !allowed.contains(&used.as_str()) {
                wrong.push(format!("{shown}: {m} uses crate::{used}"));
            }
        }
        if m == "core" {
            for banned in NOT_IN_CORE {
                if code.contains(banned) {
                    wrong.push(format!("{shown}: the core names {banned}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Each layer uses only layers listed before it, so there is no cycle.
#[test]
fn the_layers_are_ordered() {
    for (i, (name, allowed)) in LAYERS.iter().enumerate() {
        for a in *allowed {
            assert!(
                LAYERS[..i].iter().any(|(n, _)| n == a),
                "{name} may use {a}, which is not below it"
            );
        }
    }
}
