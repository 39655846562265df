//! The layer map of `src/lib.rs`, enforced: every module imports only from its
//! own layer or those below it, and no two modules import each other. The
//! sources are read as text (comments, strings and `#[cfg(test)]` items left
//! out); `use crate::…`, `crate::…` paths and `super::…` paths are the imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path prefix -> layer, bottom (0) to top. The longest prefix wins, so
/// `platform::trust` sits in platform while `judge::…` is one layer up.
const LAYERS: &[(&str, u8, &str)] = &[
    ("util", 0, "util"),
    ("terminal", 0, "util"),
    ("logging", 0, "util"),
    ("deadline", 0, "util"),
    ("model", 1, "model"),
    ("platform", 2, "platform"),
    ("judge", 3, "judge"),
    ("observe", 4, "observe"),
    ("settings", 5, "settings"),
    ("baseline", 5, "baseline"),
    ("tables", 6, "tables"),
    ("extension", 7, "serve"),
    ("sql", 7, "serve"),
    ("cli", 8, "cli"),
    ("", 9, "main"),
];

fn layer_of(module: &str) -> (u8, &'static str) {
    LAYERS
        .iter()
        .filter(|(prefix, _, _)| {
            prefix.is_empty() || module == *prefix || module.starts_with(&format!("{prefix}::"))
        })
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|(_, rank, name)| (*rank, *name))
        .expect("the root entry matches everything")
}

/// Source text with comments, string and char literals blanked (newlines kept, so
/// line numbers stay true).
fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend(bytes.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }));
    };
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            i + rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            let mut j = i;
            loop {
                if j + 1 >= b.len() {
                    break b.len();
                }
                if &b[j..j + 2] == b"/*" {
                    depth += 1;
                    j += 2;
                } else if &b[j..j + 2] == b"*/" {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break j;
                    }
                } else {
                    j += 1;
                }
            }
        } else if (rest.starts_with(b"r\"") || rest.starts_with(b"r#") || rest.starts_with(b"br"))
            && !(i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            let start = i + if rest[0] == b'b' { 2 } else { 1 };
            let hashes = b[start..].iter().take_while(|&&c| c == b'#').count();
            if b.get(start + hashes) != Some(&b'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let body = start + hashes + 1;
            body + b[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(b.len() - body, |p| p + close.len())
        } else if rest[0] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(b.len())
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{1F600}'), not a lifetime ('a).
            let literal_end = if rest.get(1) == Some(&b'\\') {
                rest.iter()
                    .skip(2)
                    .position(|&c| c == b'\'')
                    .map(|p| i + p + 3)
            } else {
                let width = std::str::from_utf8(&rest[1..rest.len().min(5)])
                    .ok()
                    .or_else(|| std::str::from_utf8(&rest[1..rest.len().min(4)]).ok())
                    .or_else(|| std::str::from_utf8(&rest[1..rest.len().min(3)]).ok())
                    .or_else(|| std::str::from_utf8(&rest[1..rest.len().min(2)]).ok())
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (rest.get(1 + width) == Some(&b'\'')).then_some(i + width + 2)
            };
            match literal_end {
                Some(end) => end,
                None => {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
            continue;
        };
        blank(&mut out, &b[i..end]);
        i = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Blanks every item under `#[cfg(test)]` (up to its matching `}` or `;`).
fn strip_test_items(text: &str) -> String {
    let mut b = text.as_bytes().to_vec();
    let marker = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(at) = b[from..]
        .windows(marker.len())
        .position(|w| w == marker)
        .map(|p| p + from)
    {
        let mut j = at + marker.len();
        let mut depth = 0usize;
        while j < b.len() {
            match b[j] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        for c in &mut b[at..j.min(text.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = j.min(b.len());
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// One import: where it is written and the module path it names.
#[derive(Debug)]
struct Import {
    line: usize,
    written: String,
    target: Vec<String>,
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The path segments following `at` (`a::b::{c, d}` gives `[a, b]` and then each
/// group member's first segment).
fn paths_at(code: &str, at: usize) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut segments = Vec::new();
    let mut i = at;
    loop {
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        if i == start {
            break;
        }
        segments.push(code[start..i].to_owned());
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if !code[j..].starts_with("::") {
            return vec![segments];
        }
        i = j + 2;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    if b.get(i) != Some(&b'{') {
        return vec![segments];
    }
    // A group: split at top-level commas.
    let mut depth = 0usize;
    let mut member_start = i + 1;
    let mut out = Vec::new();
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'{' => depth += 1,
            b'}' | b',' if depth == 1 => {
                let member = code[member_start..j].trim();
                let name: String = member
                    .bytes()
                    .take_while(|&c| is_ident(c))
                    .map(char::from)
                    .collect();
                if !name.is_empty() && name != "self" {
                    let mut path = segments.clone();
                    path.push(name);
                    out.push(path);
                } else if name == "self" {
                    out.push(segments.clone());
                }
                member_start = j + 1;
                if b[j] == b'}' {
                    break;
                }
            }
            b'}' => depth -= 1,
            _ => {}
        }
        j += 1;
    }
    out
}

/// The module a file defines: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`;
/// `src/lib.rs` and `src/main.rs` are the root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn imports_of(module: &[String], code: &str) -> Vec<Import> {
    let b = code.as_bytes();
    let line_of = |at: usize| code[..at].bytes().filter(|&c| c == b'\n').count() + 1;
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b':' || b[at - 1] == b'$') {
            continue;
        }
        for target in paths_at(code, at + "crate::".len()) {
            out.push(Import {
                line: line_of(at),
                written: format!("crate::{}", target.join("::")),
                target,
            });
        }
    }
    for (at, _) in code.match_indices("super::") {
        if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b':' || b[at - 1] == b'$') {
            continue;
        }
        let mut base: Vec<String> = module.to_vec();
        let mut i = at;
        while code[i..].starts_with("super::") {
            base.pop();
            i += "super::".len();
        }
        let written_prefix = &code[at..i];
        let rest = paths_at(code, i);
        let rest = if rest.is_empty() || code[i..].starts_with('*') {
            vec![Vec::new()]
        } else {
            rest
        };
        for tail in rest {
            let mut target = base.clone();
            target.extend(tail.iter().cloned());
            out.push(Import {
                line: line_of(at),
                written: format!("{written_prefix}{}", tail.join("::")),
                target,
            });
        }
    }
    out
}

struct Source {
    file: PathBuf,
    module: Vec<String>,
    imports: Vec<Import>,
}

fn read_sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("read source");
            let code = strip_test_items(&strip_comments_and_strings(&text));
            let module = module_of(&src, &file);
            let imports = imports_of(&module, &code);
            Source {
                file,
                module,
                imports,
            }
        })
        .collect()
}

/// The module (of those that have a file) a path lands in: its longest prefix.
fn owning_module<'a>(modules: &'a BTreeSet<Vec<String>>, path: &[String]) -> &'a Vec<String> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n].to_vec()))
        .expect("the root module exists")
}

#[test]
fn every_module_imports_only_from_its_layer_or_below() {
    let sources = read_sources();
    assert!(sources.len() > 40, "read the sources");
    let mut violations = Vec::new();
    let mut unmapped = BTreeSet::new();
    for source in &sources {
        let from = source.module.join("::");
        if !source.module.is_empty() && layer_of(&from).1 == "main" {
            unmapped.insert(from.clone());
        }
        let (from_rank, from_layer) = layer_of(&from);
        for import in &source.imports {
            let to = import.target.join("::");
            let (to_rank, to_layer) = layer_of(&to);
            if to_rank > from_rank {
                violations.push(format!(
                    "{}:{}: `{}` ({from_layer}) imports `{}` ({to_layer}, a layer above)",
                    source.file.display(),
                    import.line,
                    if from.is_empty() { "crate" } else { &from },
                    import.written,
                ));
            }
        }
    }
    assert!(
        unmapped.is_empty(),
        "modules missing from the layer map (LAYERS here and the map in src/lib.rs): {unmapped:?}"
    );
    assert!(
        violations.is_empty(),
        "upward imports:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let sources = read_sources();
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    // Edges between modules, leaving out a module's imports of its own ancestors
    // (a child using its parent's items is how Rust modules nest).
    let mut edges: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> = BTreeMap::new();
    for source in &sources {
        for import in &source.imports {
            let to = owning_module(&modules, &import.target);
            if *to == source.module
                || source.module.starts_with(to)
                || to.starts_with(&source.module)
            {
                continue;
            }
            edges
                .entry(source.module.clone())
                .or_default()
                .entry(to.clone())
                .or_insert_with(|| format!("{}:{}", source.file.display(), import.line));
        }
    }
    let mut cycles = Vec::new();
    for (from, targets) in &edges {
        for (to, at) in targets {
            if let Some(back) = edges.get(to).and_then(|t| t.get(from)) {
                if from < to {
                    cycles.push(format!(
                        "{} <-> {} ({at}; {back})",
                        from.join("::"),
                        to.join("::")
                    ));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_reader_sees_imports_and_skips_comments_strings_and_tests() {
    let code = strip_test_items(&strip_comments_and_strings(
        "use crate::model::{Pid, SocketInfo};\n\
         use crate::{observe, util::glob};\n\
         // crate::tables::x in a comment\n\
         let s = \"crate::tables in a string\"; let c = '{';\n\
         fn f<'a>(x: &'a str) { super::super::sql::run(); }\n\
         #[cfg(test)]\nmod tests { use crate::tables::Row; }\n",
    ));
    let module = vec!["baseline".to_owned(), "sampler".to_owned()];
    let found: Vec<String> = imports_of(&module, &code)
        .iter()
        .map(|i| i.target.join("::"))
        .collect();
    assert_eq!(
        found,
        [
            "model::Pid",
            "model::SocketInfo",
            "observe",
            "util",
            "sql::run"
        ]
    );
    assert_eq!(layer_of("cli::baseline"), (8, "cli"));
    assert_eq!(layer_of("judge::socks::ssh"), (3, "judge"));
    assert_eq!(layer_of("platform::trust"), (2, "platform"));
    assert_eq!(layer_of("baseline::store"), (5, "baseline"));
    assert_eq!(layer_of("platform::linux::sockets"), (2, "platform"));
}
