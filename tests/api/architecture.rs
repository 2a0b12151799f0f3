//! The module graph reads as the architecture: layers import only downward
//! (http → services → db and domain → configuration and crypto), and no
//! group of modules imports itself in a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each layer and the layers it may use. A module belongs to the first
/// layer whose prefix it has.
const LAYERS: &[(&str, &[&str])] = &[
    ("main", &["cli"]),
    (
        "cli",
        &[
            "startup",
            "services",
            "db",
            "domain",
            "configuration",
            "clock",
            "telemetry",
        ],
    ),
    (
        "startup",
        &[
            "http",
            "services",
            "db",
            "domain",
            "configuration",
            "crypto",
            "clock",
            "telemetry",
        ],
    ),
    (
        "http",
        &[
            "services",
            "db",
            "domain",
            "configuration",
            "crypto",
            "clock",
            "telemetry",
        ],
    ),
    (
        "services",
        &["db", "domain", "configuration", "crypto", "clock"],
    ),
    ("db", &["schema", "domain", "configuration", "crypto"]),
    ("domain", &["crypto"]),
    ("telemetry", &["configuration"]),
    ("configuration", &[]),
    ("crypto", &[]),
    ("clock", &[]),
    ("schema", &[]),
];

/// `src/http/auth/cookies.rs` → `http::auth::cookies`; `mod.rs` names its
/// directory; `lib.rs` is the root.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The source before its unit tests, without comments (doc links are not
/// imports).
fn code(source: &str) -> String {
    let before_tests = source.split("#[cfg(test)]").next().unwrap_or_default();
    before_tests
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` and `super::a` path in `code`, as module paths.
fn paths(module: &str, code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (anchor, base) in [
        ("crate::", String::new()),
        (
            "super::",
            module
                .rsplit_once("::")
                .map(|(parent, _)| parent.to_owned())
                .unwrap_or_default(),
        ),
    ] {
        for (at, _) in code.match_indices(anchor) {
            let preceded_by_ident = code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            if preceded_by_ident {
                continue;
            }
            let rest: String = code[at + anchor.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let joined = [base.as_str(), rest.trim_end_matches(':')]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("::");
            found.push(joined);
        }
    }
    found
}

/// Every module's source, by module path.
fn sources() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let module = module_of(path.strip_prefix(&src).unwrap());
                sources.insert(module, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    sources
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let sources = sources();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, source)| {
            let uses = paths(module, &code(source))
                .into_iter()
                .filter_map(|path| {
                    // The longest module prefix of the path is what it uses.
                    let mut candidate = path.as_str();
                    loop {
                        if modules.contains(candidate) {
                            return Some(candidate.to_owned());
                        }
                        candidate = candidate.rsplit_once("::")?.0;
                    }
                })
                .filter(|used| used != module && !used.is_empty())
                .collect();
            (module.clone(), uses)
        })
        .collect()
}

fn layer(module: &str) -> &'static str {
    LAYERS
        .iter()
        .map(|(layer, _)| *layer)
        .find(|layer| module == *layer || module.starts_with(&format!("{layer}::")))
        .unwrap_or_else(|| panic!("module {module} belongs to no layer; add it to LAYERS"))
}

#[test]
fn layers_import_only_downward() {
    let mut violations = Vec::new();
    // The crate root only declares the modules.
    for (module, uses) in graph().into_iter().filter(|(module, _)| !module.is_empty()) {
        let from = layer(&module);
        let allowed = LAYERS.iter().find(|(layer, _)| *layer == from).unwrap().1;
        for used in uses {
            let to = layer(&used);
            if to != from && !allowed.contains(&to) {
                violations.push(format!("{module} ({from}) uses {used} ({to})"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

/// Storage, values and services are plain Rust: the web framework is the
/// HTTP layer's business (and an embedding application's choice).
#[test]
fn storage_values_and_services_know_nothing_of_the_web_framework() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(module, _)| !module.is_empty())
        .filter(|(module, _)| matches!(layer(module), "db" | "domain" | "services"))
        .filter(|(_, source)| code(source).contains("actix"))
        .map(|(module, _)| module)
        .collect();
    assert!(offenders.is_empty(), "these use actix: {offenders:?}");
}

#[test]
fn no_modules_import_each_other_in_a_loop() {
    let graph = graph();
    // Depth-first search for a back edge; report the loop it closes.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|m| m == module) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if !done.insert(module.to_owned()) {
            return None;
        }
        stack.push(module.to_owned());
        for used in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(used, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let cycle = visit(module, &graph, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" → ")
        );
    }
}

#[test]
fn the_checker_sees_imports() {
    let graph = graph();
    assert!(graph["http::routes::login"].contains("services::login"));
    assert!(graph["services::throttle::postgres"].contains("services::throttle"));
    assert!(graph["startup"].contains("http"));
}
