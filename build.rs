//! Build script: converts `openapi.yaml` (the API contract, written by hand) to compact JSON in `OUT_DIR`,
//! which `functions::openapi` embeds with `include_str!`, so the binary serves the document without parsing
//! YAML (or anything) at run time. A contract that does not parse fails the build.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let source = manifest_dir.join("openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let yaml = std::fs::read_to_string(&source).expect("openapi.yaml is readable");
    let document: serde_json::Value = serde_norway::from_str(&yaml).expect("openapi.yaml is valid YAML");
    let json = serde_json::to_string(&document).expect("a JSON value serialises");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.json");
    std::fs::write(out, json).expect("OUT_DIR is writable");
}
