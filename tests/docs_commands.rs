//! Every command in README.md and docs/*.md runs as written.
//!
//! The commands are the `alloc8 ...` lines of the indented (shell) blocks.
//! Each is one of:
//! - a usage line (it has placeholders: `HEAP`, `[--json]`, `...`): every
//!   flag it names must be one the command accepts, and a command's own
//!   page (docs/run.md for `run`, ...) must name every flag the command has;
//! - marked `<!-- not run: why -->` just before its block (another platform,
//!   a heap's sources from the network, minutes of benchmarks): left alone;
//! - otherwise run, in order, in one scratch directory per file (with
//!   `shims/` and `examples/` beside it, as in a checkout), its exit status
//!   compared with the one expected and its output searched for the line that
//!   matters. Two bounds keep the suite cheap, and are the only changes made:
//!   `alloc8 test` without `--only` runs `--only contract`, and `alloc8 bench`
//!   without `--workload` runs one small workload once (`--workload pairs
//!   --rounds 1 --scale 0.02`).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const COMMANDS: &[&str] = &["new", "heaps", "build", "run", "check", "test", "bench", "completions", "man", "record", "profile", "replay"];

struct Example {
    file: String,
    line: usize,
    text: String,
    /// `<!-- not run: why -->` before its block.
    not_run: Option<String>,
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map_or(false, |e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The `alloc8 <command>` lines of the indented blocks (fenced blocks are
/// Rust, C or TOML), continuation lines joined, trailing comments dropped.
fn examples(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.strip_prefix(root()).unwrap().display().to_string();
    let mut out = Vec::new();
    let (mut fenced, mut marker, mut in_block): (bool, Option<String>, bool) = (false, None, false);
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if let Some(why) = line.trim().strip_prefix("<!-- not run:") {
            marker = Some(why.trim_end_matches("-->").trim().to_string());
            continue;
        }
        let Some(code) = line.strip_prefix("    ") else {
            if !line.trim().is_empty() {
                if in_block {
                    marker = None;
                }
                in_block = false;
            }
            continue;
        };
        in_block = true;
        let mut command = code.trim().to_string();
        let number = i;
        while command.ends_with('\\') && i < lines.len() {
            command.pop();
            command.push(' ');
            command.push_str(lines[i].trim());
            i += 1;
        }
        // A usage line wrapped without `\`: its next lines open with `[` or `(`.
        if command.starts_with('[') || command.starts_with('(') {
            if let Some(last) = out.last_mut().filter(|e: &&mut Example| e.line + 1 == number) {
                last.text.push(' ');
                last.text.push_str(&command);
                last.line = number;
            }
            continue;
        }
        let words: Vec<&str> = command.split_whitespace().collect();
        if words.first() != Some(&"alloc8") || !words.get(1).map_or(false, |w| COMMANDS.contains(w)) {
            continue;
        }
        let command = match command.find(" # ") {
            Some(at) => command[..at].trim().to_string(),
            None => command,
        };
        out.push(Example { file: file.clone(), line: number, text: command, not_run: marker.clone() });
    }
    out
}

/// A usage line: placeholders in capitals, optional parts, alternatives, repetition.
fn is_usage(command: &str) -> bool {
    command.contains('[')
        || command.contains(" | ")
        || command.contains("...")
        || command.split_whitespace().any(|w| {
            let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
}

/// The flags a usage line names (`--heap`, `-o`).
fn flags_of(command: &str) -> Vec<String> {
    let end = command.find(" -- ").unwrap_or(command.len());
    command[..end]
        .split(|c: char| c.is_whitespace() || "[]()|=".contains(c))
        .filter(|w| w.starts_with('-') && w.len() > 1 && *w != "--")
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_string())
        .collect()
}

/// The options `alloc8 <command> --help` lists, each with its spellings (`-o`, `--output`).
fn accepted_flags(command: &str) -> Vec<Vec<String>> {
    let out = alloc8().args([command, "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut options = Vec::new();
    for line in help.lines().map(str::trim_start).filter(|l| l.starts_with('-')) {
        let spellings: Vec<String> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .take_while(|w| w.is_empty() || w.starts_with('-'))
            .filter(|w| w.len() > 1 && w.starts_with('-') && w.as_bytes()[1] != b' ')
            // `--checked[=<MODE>]`: a flag with an optional value is the flag.
            .map(|w| w.split(['[', '=']).next().unwrap_or(w).to_string())
            .collect();
        // A line of a flag's own description may open with "- value: ...".
        let is_option = spellings.first().map_or(false, |f| f.trim_start_matches('-').starts_with(|c: char| c.is_ascii_alphanumeric()));
        if is_option && !spellings.iter().any(|f| f == "--help") {
            options.push(spellings);
        }
    }
    options
}

/// The exit status and the output line that matter, by command.
fn expected(command: &str) -> (i32, &'static str) {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words[1] {
        // Debian's jemalloc has no pvalloc: a problem, by design of the audit.
        "check" if command.contains("jemalloc") => (1, "verdict: not a sound malloc replacement"),
        "check" => (0, "verdict:"),
        "new" => (0, "wrote "),
        "heaps" => (0, "threadcache"),
        "build" if command.contains("--emit-crate") => (0, "wrote the shim crate to "),
        "build" => (0, "built "),
        "run" => (0, "exited with status 0"),
        "test" => (0, "every check holds"),
        "bench" => (0, "workload"),
        "completions" => (0, "alloc8"),
        "man" => (0, "alloc8"),
        other => panic!("no expectation for `alloc8 {}`: add one to expected()", other),
    }
}

/// The command as run: the two bounds described at the top.
fn bounded(command: &str) -> Vec<String> {
    let mut words = shell_words(command);
    let split = words.iter().position(|w| w == "--").unwrap_or(words.len());
    let mut extra: Vec<String> = Vec::new();
    match words[1].as_str() {
        "test" if !words.iter().any(|w| w == "--only") => extra.extend(["--only", "contract"].map(String::from)),
        "bench" if !words.iter().any(|w| w == "--workload" || w == "--list") => {
            extra.extend(["--workload", "pairs", "--rounds", "1", "--scale", "0.02"].map(String::from))
        }
        _ => {}
    }
    words.splice(split..split, extra);
    words.remove(0);
    words
}

/// Splits a command line as sh would for these examples: words, and '...' quoted.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in command.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

#[test]
fn usage_lines_name_real_flags_and_each_commands_page_names_them_all() {
    let mut problems = Vec::new();
    for path in doc_files() {
        for ex in examples(&path).iter().filter(|e| is_usage(&e.text)) {
            let command = ex.text.split_whitespace().nth(1).unwrap();
            let accepted: Vec<String> = accepted_flags(command).concat();
            for flag in flags_of(&ex.text) {
                if !accepted.contains(&flag) {
                    problems.push(format!("{}:{}: `alloc8 {}` has no {} ({})", ex.file, ex.line, command, flag, ex.text));
                }
            }
        }
    }
    // docs/<command>.md opens with the command's usage: every flag is in it.
    for command in ["build", "run", "check", "test", "bench"] {
        let page = root().join("docs").join(format!("{}.md", command));
        let usage: Vec<String> = examples(&page)
            .iter()
            .take_while(|e| is_usage(&e.text))
            .filter(|e| e.text.split_whitespace().nth(1) == Some(command))
            .flat_map(|e| flags_of(&e.text))
            .collect();
        for spellings in accepted_flags(command) {
            if !spellings.iter().any(|f| usage.contains(f)) {
                problems.push(format!("docs/{}.md: the usage lines at the top do not name {}", command, spellings.join("/")));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_runnable_command_in_the_docs_runs_as_written() {
    let scratch = tempfile::tempdir().unwrap();
    let mut ran = 0;
    let mut failures = Vec::new();
    for path in doc_files() {
        let runnable: Vec<Example> = examples(&path).into_iter().filter(|e| e.not_run.is_none() && !is_usage(&e.text)).collect();
        if runnable.is_empty() {
            continue;
        }
        // A checkout's view: shims/ and examples/ beside the user's files.
        let dir = scratch.path().join(path.file_stem().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        for linked in ["shims", "examples"] {
            std::os::unix::fs::symlink(root().join(linked), dir.join(linked)).unwrap();
        }
        for ex in runnable {
            let args = bounded(&ex.text);
            let out = output_within(alloc8().args(&args).current_dir(&dir), Duration::from_secs(300));
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            let (status, line) = expected(&ex.text);
            if out.status.code() != Some(status) || !text.contains(line) {
                failures.push(format!(
                    "{}:{}: `{}` (run as alloc8 {:?}): exit {:?}, expected {} and a line with {:?}:\n{}",
                    ex.file,
                    ex.line,
                    ex.text,
                    args,
                    out.status.code(),
                    status,
                    line,
                    text
                ));
            }
            ran += 1;
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(ran >= 15, "only {} commands ran: is the extractor still finding them?", ran);
}

#[test]
fn every_command_that_does_not_run_says_why() {
    let mut all = Vec::new();
    for path in doc_files() {
        all.extend(examples(&path));
    }
    let skipped: Vec<&Example> = all.iter().filter(|e| e.not_run.is_some()).collect();
    for ex in &skipped {
        assert!(ex.not_run.as_deref().map_or(false, |why| why.len() > 5), "{}:{}: say why it does not run", ex.file, ex.line);
    }
    // The extractor's own cases: a usage line, a placeholder, a marked block.
    assert!(
        is_usage("alloc8 check LIB [--json]") && is_usage("alloc8 run --heap HEAP -- PROG ARGS...") && !is_usage("alloc8 check jemalloc")
    );
    assert_eq!(flags_of("alloc8 run (--lib LIB | --heap HEAP) [-o FILE] -- prog --x"), ["--lib", "--heap", "-o"]);
    assert_eq!(bounded("alloc8 test --heap system"), ["test", "--heap", "system", "--only", "contract"]);
    assert_eq!(shell_words("alloc8 run --heap system -- python3 -c 'print(1)'").last().unwrap(), "print(1)");
    let readme = examples(&root().join("README.md"));
    assert!(readme.iter().any(|e| e.text.starts_with("cargo") || e.not_run.is_some()), "the install line is marked");
}

/// The commands that are not alloc8's and too long to run in the suite
/// (`cargo bench --bench NAME`, `bash tests/run-all.sh`) name things that exist.
#[test]
fn the_other_commands_name_benches_and_scripts_that_exist() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut named = 0;
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter_map(|l| l.strip_prefix("    ")).map(str::trim) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["cargo", "bench", "--bench", name, ..] = words[..] {
                assert!(manifest.contains(&format!("name = \"{}\"", name)), "{}: no bench `{}` in Cargo.toml", path.display(), name);
                named += 1;
            }
            if let ["bash", script, ..] = words[..] {
                assert!(root().join(script).is_file(), "{}: no script {}", path.display(), script);
                named += 1;
            }
        }
    }
    assert!(named >= 7, "the README's and docs/benchmarks.md's commands were not found ({})", named);
}
