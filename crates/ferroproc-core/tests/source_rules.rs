//! Rules about the crate's source that the compiler cannot check.
//!
//! Atomics must come from `src/primitive.rs`, which swaps in loom's under `--cfg loom`;
//! an algorithm that named the standard ones directly would escape its model checks.
//! (Clippy's `disallowed-types` cannot express this: it sees through the re-export.)

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn atomics_come_only_from_primitive() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| !path.ends_with("primitive.rs"))
        .flat_map(|path| {
            let text = fs::read_to_string(path).expect("read source file");
            text.lines()
                .enumerate()
                .filter(|(_, line)| {
                    line.contains("std::sync::atomic") || line.contains("core::sync::atomic")
                })
                .map(|(number, line)| format!("{}:{}: {}", path.display(), number + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "use crate::primitive instead:\n{}",
        offenders.join("\n")
    );
}
