//! The house rules a reader relies on (issue "the house"), checked on the source: decisions and
//! mails in the domain, statuses typed, pages out of the JSON API, files that read as one thing.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

#[test]
fn crates_db_builds_no_mail_and_compares_no_status_spelled_out() {
    let db = root().join("crates/db/src");
    let literal = ["pending", "processing", "succeeded", "failed", "dead", "sent", "done", "delivered", "held"]
        .iter()
        .flat_map(|s| {
            [format!("status = '{s}'"), format!("status <> '{s}'"), format!(".eq(\"{s}\")"), format!("WHEN '{s}'")]
        })
        .collect::<Vec<_>>();
    let mut found = Vec::new();
    for file in rust_files(&db) {
        if file.ends_with("schema.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("Mail::new(") || literal.iter().any(|l| line.contains(l.as_str())) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "decided or spelled out in crates/db:\n{}", found.join("\n"));
}

#[test]
fn the_json_api_depends_on_no_html_template_crate() {
    let manifest = std::fs::read_to_string(root().join("crates/api/Cargo.toml")).unwrap();
    for template in ["maud", "askama", "tera", "handlebars", "minijinja"] {
        assert!(
            !manifest.lines().any(|l| l.trim_start().starts_with(template)),
            "crates/api depends on {template}: pages belong in crates/web"
        );
    }
}

#[test]
fn no_source_file_in_crates_is_over_seven_hundred_lines() {
    let long: Vec<String> = rust_files(&root().join("crates"))
        .into_iter()
        .filter(|f| !f.ends_with("schema.rs"))
        .filter_map(|f| {
            let lines = std::fs::read_to_string(&f).unwrap().lines().count();
            (lines > 700).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}
