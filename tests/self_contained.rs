//! The repository stands alone: no tracked text file reads or links anything outside the checkout (the
//! vectors live in `tests/vectors/`, the design and protocol notes in `docs/`), and no file names a path
//! of the machine it was written on. A clone with no sibling folders passes the whole suite.

use std::path::{Path, PathBuf};

/// Folders that are build output or installed packages, not sources.
const SKIP_DIRS: &[&str] = &[".git", "target", "node_modules", "corpus", "artifacts"];

fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                text_files(&path, out);
            }
        } else if [
            "rs", "md", "toml", "mjs", "js", "sh", "json", "proto", "yml", "txt",
        ]
        .iter()
        .any(|ext| name.ends_with(&format!(".{ext}")))
            || name == "run"
        {
            out.push(path);
        }
    }
}

#[test]
fn no_file_refers_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    text_files(root, &mut files);
    assert!(
        files.len() > 100,
        "walked only {} files under {}",
        files.len(),
        root.display()
    );
    // Built at run time so this file does not match itself.
    let sibling = format!("..{}shared", '/');
    let machine = format!("{}work{}", '/', '/');
    let mut offenders = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if line.contains(&sibling) || line.contains(&machine) {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "files refer outside the repository:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_vector_file_a_test_reads_is_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vectors = root.join("tests/vectors");
    let mut tests = Vec::new();
    text_files(&root.join("tests"), &mut tests);
    let mut named = 0;
    for file in tests.iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')) {
            if word.ends_with(".json") && !word.starts_with('.') && word.len() > 5 {
                let candidate = vectors.join(word);
                if candidate.exists() {
                    named += 1;
                } else if [
                    "waku",
                    "rlpx",
                    "mvds",
                    "payloads",
                    "double_ratchet",
                    "compat",
                    "alias",
                    "x3dh",
                ]
                .iter()
                .any(|p| word.starts_with(p))
                {
                    panic!("{} names {word}, which is not in tests/vectors/", file.display());
                }
            }
        }
    }
    assert!(named >= 10, "only {named} vector file names found in the tests");
}
