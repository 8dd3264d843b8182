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

/// The markdown files whose links must resolve: the README and everything under `docs/`.
fn markdown_docs(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut under_docs = Vec::new();
    text_files(&root.join("docs"), &mut under_docs);
    files.extend(
        under_docs
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "md")),
    );
    files
}

/// The targets of the inline (`[text](target)`) and reference-style (`[label]: target`) links of a markdown
/// text, outside fenced code blocks and inline code spans, with their line numbers.
fn markdown_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Reference definitions: `[label]: target`.
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some((_, target)) = rest.split_once("]: ") {
                links.push((n + 1, target.split_whitespace().next().unwrap_or("").to_string()));
                continue;
            }
        }
        // Inline links, skipping code spans.
        let mut in_code = false;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '`' => in_code = !in_code,
                ']' if !in_code && chars.get(i + 1) == Some(&'(') => {
                    let start = i + 2;
                    let mut depth = 1;
                    let mut j = start;
                    while j < chars.len() {
                        match chars[j] {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    let inner: String = chars[start..j.min(chars.len())].iter().collect();
                    // A title may follow the target: `(target "title")`.
                    links.push((n + 1, inner.split_whitespace().next().unwrap_or("").to_string()));
                    i = j;
                }
                _ => {}
            }
            i += 1;
        }
    }
    links
}

#[test]
fn every_relative_markdown_link_points_to_a_file_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let canonical_root = root.canonicalize().unwrap();
    let files = markdown_docs(root);
    for required in ["docs/architecture.md", "docs/protocol/README.md"] {
        assert!(files.contains(&root.join(required)), "{required} is missing");
    }
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, target) in markdown_links(&text) {
            if target.is_empty() {
                broken.push(format!("{}:{line}: empty link target", file.display()));
                continue;
            }
            if target.contains("://") || target.starts_with("mailto:") || target.starts_with('#') {
                continue;
            }
            let path = target.split('#').next().unwrap_or_default();
            if path.starts_with('/') {
                broken.push(format!("{}:{line}: {target}: an absolute path", file.display()));
                continue;
            }
            let resolved = file.parent().unwrap().join(path);
            match resolved.canonicalize() {
                Ok(real) if real.starts_with(&canonical_root) => checked += 1,
                Ok(_) => broken.push(format!(
                    "{}:{line}: {target}: outside the repository",
                    file.display()
                )),
                Err(_) => broken.push(format!("{}:{line}: {target}: no such file", file.display())),
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // The README links every protocol note and the notes link each other: far more than this.
    assert!(
        checked >= 30,
        "only {checked} relative links checked in {} files",
        files.len()
    );
}

#[test]
fn the_link_checker_sees_links_and_skips_code() {
    let text = "See [a](guide/a.md) and [b](../b.md#part \"title\").\n`[not](a link)` [c](https://x.org)\n\
                ```\n[fenced](nope.md)\n```\n[ref]: guide/ref.md\n";
    let targets: Vec<String> = markdown_links(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        targets,
        ["guide/a.md", "../b.md#part", "https://x.org", "guide/ref.md"]
    );
}

/// The `docs/...md` files a line cites and, for `docs/NOTE.md §N`, whether the note has a heading numbered
/// `N`: returns how many citations the line makes and what is wrong with them.
fn check_citations(root: &Path, line: &str) -> (usize, Vec<String>) {
    let (mut cited, mut problems) = (0, Vec::new());
    let mut rest = line;
    while let Some(at) = rest.find("docs/") {
        let tail = &rest[at..];
        rest = &tail[5..];
        let Some(end) = tail.find(".md").map(|e| e + 3) else {
            continue;
        };
        let name = &tail[..end];
        if !name[5..end - 3]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-' || c == '/')
        {
            continue;
        }
        cited += 1;
        let Ok(note) = std::fs::read_to_string(root.join(name)) else {
            problems.push(format!("{name}: no such file"));
            continue;
        };
        if let Some(section) = tail[end..].trim_start().strip_prefix('§') {
            let number: String = section
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let number = number.trim_end_matches('.');
            let heading = note.lines().any(|l| {
                l.starts_with('#')
                    && (l.trim_start_matches('#').trim_start().strip_prefix(number))
                        .is_some_and(|r| r.starts_with(['.', ' ']))
            });
            if number.is_empty() || !heading {
                problems.push(format!("{name} §{number}: no such section"));
            }
        }
    }
    (cited, problems)
}

#[test]
fn the_citation_checker_finds_missing_notes_and_sections() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        check_citations(root, "(docs/protocol/rlpx.md §3.4, docs/architecture.md)"),
        (2, vec![])
    );
    let (cited, problems) = check_citations(root, "docs/protocol/rlpx.md §99 and docs/protocol/nope.md §1");
    assert_eq!(cited, 2);
    assert_eq!(
        problems,
        [
            "docs/protocol/rlpx.md §99: no such section",
            "docs/protocol/nope.md: no such file"
        ]
    );
}

#[test]
fn every_note_and_section_the_sources_cite_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "io-std", "io-tokio", "proto", "benches", "fuzz", "tests"] {
        text_files(&root.join(dir), &mut files);
    }
    let this_file = root.join("tests/self_contained.rs");
    let mut cited = 0;
    let mut missing = Vec::new();
    for file in files.iter().filter(|f| **f != this_file) {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            let (count, problems) = check_citations(root, line);
            cited += count;
            missing.extend(
                problems
                    .into_iter()
                    .map(|p| format!("{}:{}: {p}", file.display(), n + 1)),
            );
        }
    }
    assert!(
        missing.is_empty(),
        "citations of missing notes or sections:\n{}",
        missing.join("\n")
    );
    assert!(
        cited >= 50,
        "only {cited} citations of docs/ found in the sources"
    );
}
