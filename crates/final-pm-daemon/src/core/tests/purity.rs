//! The purity guard: the core must stay free of I/O and of the clock.
//!
//! Crude on purpose (a text search), and cheap: it keeps the sans-IO design
//! honest when someone reaches for a quick `std::fs` call in the core. Test
//! code (this directory, and anything after a file's first `#[cfg(test)]`)
//! and comment lines are not scanned.

use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 7] = [
    "tokio::",
    "nix::",
    "std::process",
    "std::fs",
    "std::net",
    "Instant::now",
    "SystemTime::now",
];

fn core_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/core") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "tests") {
                continue;
            }
            core_sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_does_no_io_and_reads_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    core_sources(&root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("mod.rs")) && files.len() >= 5,
        "the guard found too few files: {files:?}"
    );
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in production.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for word in FORBIDDEN {
                if line.contains(word) {
                    violations.push(format!("{}:{}: {word}", file.display(), number + 1));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "I/O or clock in the core:\n{}",
        violations.join("\n")
    );
}
