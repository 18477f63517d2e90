//! Recipes whose sources are git repositories (`[repos.NAME]` in
//! alloc8.toml): fetched once at the pinned commit into the cache, reused
//! offline, overridden by a variable, refused with one line when the commit
//! is wrong or the repository cannot be reached. Every repository is a
//! local one made here (`file://`): no test touches the network.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=alloc8", "-c", "user.email=alloc8@example.org", "-c", "commit.gpgsign=false"])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {:?}: {}", args, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = work_dir().join("git-sources").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A repository holding the xx_bump heap in two commits: the first as it
/// is, the second with a marker that breaks the build. Returns (repo, the
/// first commit, the second).
fn heap_repo(dir: &Path) -> (PathBuf, String, String) {
    let repo = dir.join("upstream");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet"]);
    std::fs::copy(shim_source("xx_bump"), repo.join("xx_bump.c")).unwrap();
    git(&repo, &["add", "xx_bump.c"]);
    git(&repo, &["commit", "--quiet", "-m", "the heap"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("xx_bump.c"), "#error the second commit is not the pinned one\n").unwrap();
    git(&repo, &["commit", "--quiet", "-am", "broken"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    (repo, first, second)
}

/// A recipe directory whose only source is in `[repos.bump]`.
fn recipe(dir: &Path, url: &str, rev: &str) -> PathBuf {
    let recipe = dir.join("recipe");
    std::fs::create_dir_all(&recipe).unwrap();
    let toml = format!(
        "name = \"bump\"\nsources = [\"${{repos.bump}}/xx_bump.c\"]\n\n[repos.bump]\ngit = \"{}\"\nrev = \"{}\"\nenv = \"ALLOC8_TEST_BUMP_SRC\"\n",
        url, rev
    );
    std::fs::write(recipe.join("alloc8.toml"), toml).unwrap();
    recipe
}

fn url(repo: &Path) -> String {
    format!("file://{}", repo.display())
}

/// `alloc8 build` of `recipe` with its own cache `cache`: (success, stderr).
fn build(recipe: &Path, cache: &Path, out: &Path, env: Option<&Path>) -> (bool, String) {
    let mut cmd = alloc8();
    cmd.env("ALLOC8_CACHE_DIR", cache).env_remove("ALLOC8_TEST_BUMP_SRC");
    if let Some(dir) = env {
        cmd.env("ALLOC8_TEST_BUMP_SRC", dir);
    }
    cmd.args(["build", "--heap"]).arg(recipe).args(["--mode", "interpose", "--out"]).arg(out);
    let output = output_within(&mut cmd, std::time::Duration::from_secs(600));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{}", stderr);
    (output.status.success(), stderr)
}

/// The cache's checkouts of `repos.bump`.
fn checkouts(cache: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(cache.join("repos")) else { return Vec::new() };
    entries.map(|e| e.unwrap().path()).filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')).collect()
}

#[test]
fn a_pinned_commit_is_fetched_once_then_built_offline() {
    let dir = scratch("fetch-once");
    let (repo, first, second) = heap_repo(&dir);
    assert_ne!(first, second);
    let recipe = recipe(&dir, &url(&repo), &first);
    let cache = dir.join("cache");
    let out = dir.join("out");

    // The repository's HEAD is the broken second commit: only a checkout
    // of the pinned first one builds.
    let (ok, stderr) = build(&recipe, &cache, &out, None);
    assert!(ok, "{}", stderr);
    assert!(stderr.contains("fetching bump"), "a fetch is announced: {}", stderr);
    assert!(out.join("libbump.so").is_file());
    let [checkout] = &checkouts(&cache)[..] else { panic!("one checkout expected: {:?}", checkouts(&cache)) };
    assert_eq!(git(checkout, &["rev-parse", "HEAD"]), first);
    assert_eq!(std::fs::read(checkout.join("xx_bump.c")).unwrap(), std::fs::read(shim_source("xx_bump")).unwrap());

    // The repository is gone (offline): the cached checkout still builds,
    // without fetching again.
    std::fs::remove_dir_all(&repo).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let (ok, stderr) = build(&recipe, &cache, &out, None);
    assert!(ok, "{}", stderr);
    assert!(!stderr.contains("fetching"), "nothing to fetch: {}", stderr);
    assert!(out.join("libbump.so").is_file());
}

#[test]
fn a_commit_the_repository_lacks_is_one_line_naming_it() {
    let dir = scratch("wrong-commit");
    let (repo, _, _) = heap_repo(&dir);
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let recipe = recipe(&dir, &url(&repo), missing);
    let cache = dir.join("cache");
    let mut cmd = alloc8();
    cmd.env("ALLOC8_CACHE_DIR", &cache).env_remove("ALLOC8_TEST_BUMP_SRC");
    let (last, _) = build_fails_with(cmd, &recipe);
    for part in [missing, &url(&repo), "ALLOC8_TEST_BUMP_SRC", "has no commit"] {
        assert!(last.contains(part), "{:?} lacks {:?}", last, part);
    }
    assert!(checkouts(&cache).is_empty(), "a failed fetch leaves nothing: {:?}", checkouts(&cache));
    assert!(std::fs::read_dir(cache.join("repos")).map_or(true, |mut d| d.next().is_none()), "no temporary left behind");
}

#[test]
fn an_unreachable_repository_without_a_cached_copy_names_url_commit_and_variable() {
    let dir = scratch("unreachable");
    let (_, first, _) = heap_repo(&dir);
    let gone = url(&dir.join("no-such-repository"));
    let recipe = recipe(&dir, &gone, &first);
    let mut cmd = alloc8();
    cmd.env("ALLOC8_CACHE_DIR", dir.join("cache")).env_remove("ALLOC8_TEST_BUMP_SRC");
    let (last, stderr) = build_fails_with(cmd, &recipe);
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{}", stderr);
    for part in [gone.as_str(), first.as_str(), "ALLOC8_TEST_BUMP_SRC", "cannot fetch"] {
        assert!(last.contains(part), "{:?} lacks {:?}", last, part);
    }
}

#[test]
fn the_variable_points_at_a_local_checkout_instead() {
    let dir = scratch("override");
    let (_, first, _) = heap_repo(&dir);
    // The URL leads nowhere: with the variable set, alloc8 never fetches.
    let recipe = recipe(&dir, &url(&dir.join("no-such-repository")), &first);
    let local = dir.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let mut cmd = alloc8();
    cmd.env("ALLOC8_CACHE_DIR", dir.join("cache")).env("ALLOC8_TEST_BUMP_SRC", &local);
    // The local checkout lacks the source: the error names the file there.
    let (last, stderr) = build_fails_with(cmd, &recipe);
    assert!(!stderr.contains("fetching"), "{}", stderr);
    assert!(last.contains(&local.join("xx_bump.c").display().to_string()), "{}", last);
    // A variable that names no directory is refused, naming it.
    let mut cmd = alloc8();
    cmd.env("ALLOC8_CACHE_DIR", dir.join("cache")).env("ALLOC8_TEST_BUMP_SRC", dir.join("nowhere"));
    let (last, _) = build_fails_with(cmd, &recipe);
    assert!(last.contains("ALLOC8_TEST_BUMP_SRC") && last.contains("not a directory"), "{}", last);
    assert!(checkouts(&dir.join("cache")).is_empty());
}

/// Runs `alloc8 build --heap recipe` (cmd carries the environment), which
/// must fail with one `error:` line last: (that line, all of stderr).
fn build_fails_with(mut cmd: Command, recipe: &Path) -> (String, String) {
    cmd.args(["build", "--heap"]).arg(recipe).arg("--out").arg(work_dir().join("never"));
    let out = output_within(&mut cmd, std::time::Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", stderr);
    assert!(!stderr.contains("panicked"), "{}", stderr);
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{}", stderr);
    (last, stderr)
}
