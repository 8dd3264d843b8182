//! Compiles every `protos/*.proto` with protox (pure Rust, no `protoc`) and prost-build, and writes
//! `modules.rs`, which declares one Rust module per protobuf package.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("protos");
    println!("cargo:rerun-if-changed=protos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut packages = BTreeSet::new();
    if !files.is_empty() {
        let fds = protox::compile(&files, [&dir])?;
        for f in &fds.file {
            packages.insert(f.package().to_string());
        }
        // Maps of the encryption package are BTreeMaps so encoding is deterministic (the sans-IO contract:
        // same inputs, same bytes); std HashMap iteration order is random per process.
        prost_build::Config::new()
            .bytes(["."])
            .btree_map([".encryption"])
            .compile_fds(fds)?;
    }
    let mut modules = String::new();
    for p in &packages {
        modules.push_str(&format!(
            "/// Generated from the `{p}` protobuf package.\n#[allow(missing_docs, clippy::all)]\npub mod {p} {{\n    include!(concat!(env!(\"OUT_DIR\"), \"/{p}.rs\"));\n}}\n"
        ));
    }
    std::fs::write(out.join("modules.rs"), modules)?;
    Ok(())
}
