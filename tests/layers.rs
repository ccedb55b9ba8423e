//! The module map of docs/DESIGN.md, enforced: each module of a crate uses only
//! modules on lower layers (and its own submodules). Read from the sources,
//! leaving out comments and test code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layers, lowest first; a module may use any module on a layer below its own.
const DATAPLANE: &[&[&str]] = &[
    &["named_enum", "named"],
    &["cpu", "memory", "packet_io", "pcap"],
    &["wire", "dpdk"],
    &["tables", "synth"],
    &["stats"],
    &["pipeline"],
    &["worker", "replay"],
];

const CONTROLPLANE: &[&[&str]] = &[
    &[
        "Failure",
        "clock",
        "ids",
        "rule_fields",
        "service_notify",
        "windows",
    ],
    &["detect", "rule"],
    &["store", "forensics"],
    &["mitigate", "resources"],
    &["integrations"],
    &["config"],
    &["setup", "engine"],
    &["commands", "replay"],
    &["live"],
    &["api", "client"],
    &["run"],
    &["cli"],
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules of the crate this code names (`crate::x`, and the
/// names in `use crate::{x, y::z}`).
fn used(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for part in code.split("crate::").skip(1) {
        if let Some(group) = part.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(ident(item.trim()));
        } else {
            out.insert(ident(part));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

fn check(crate_dir: &str, layers: &[&[&str]]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src");
    let layer_of = |m: &str| layers.iter().position(|l| l.contains(&m));
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let module = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" || rel.ends_with("tests.rs") {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            wrong.push(format!("{crate_dir}: module {module} is on no layer"));
            continue;
        };
        for dep in used(&code(&file)) {
            if dep == module {
                continue;
            }
            match layer_of(&dep) {
                Some(l) if l < own => {}
                Some(_) => wrong.push(format!(
                    "{crate_dir}/src/{}: {module} uses {dep}, which is not below it",
                    rel.display()
                )),
                None => wrong.push(format!(
                    "{crate_dir}/src/{}: {module} uses {dep}, which is on no layer",
                    rel.display()
                )),
            }
        }
    }
    wrong
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let mut wrong = check("dataplane", DATAPLANE);
    wrong.extend(check("controlplane", CONTROLPLANE));
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_grouped_and_nested_uses() {
    let found = used("use crate::{a, b::{c, d}, e::f};\nlet x = crate::g::h();");
    let want: BTreeSet<String> = ["a", "b", "e", "g"].iter().map(|s| s.to_string()).collect();
    assert_eq!(found, want);
}
