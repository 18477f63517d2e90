//! `alloc8 check` on real Mach-O dylibs, linked here by Debian's clang and
//! ld64.lld from the C fixtures in tests/fixtures/macho (gen.sh): the
//! interpose pairs are read from dyld's rebase and bind information, and
//! what the macOS contract asks for and the pairs lack is reported.

#![allow(dead_code)]

// The reader itself, compiled in, for the mutation test (as tests/check_fuzz.rs).
#[path = "../src/check/mod.rs"]
mod audit;
mod common;
#[path = "../src/contract.rs"]
mod contract;
mod rng;

use common::{alloc8, root, work_dir};
use rng::Rng;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/macho").join(name)
}

fn check(name: &str) -> (Value, i32) {
    let out = alloc8().args(["check", "--json"]).arg(fixture(name)).output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {}", e, String::from_utf8_lossy(&out.stderr)));
    (json, out.status.code().unwrap())
}

fn family<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["families"].as_array().unwrap().iter().find(|f| f["family"] == name).unwrap_or_else(|| panic!("no family {}", name))
}

fn present(json: &Value, name: &str) -> Vec<String> {
    family(json, name)["present"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn gaps(json: &Value, name: &str) -> Vec<(String, String)> {
    family(json, name)["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap().to_string(), g["severity"].as_str().unwrap().to_string()))
        .collect()
}

fn hazard<'a>(json: &'a Value, kind: &str) -> Option<&'a Value> {
    json["hazards"].as_array().unwrap().iter().find(|h| h["kind"] == kind)
}

#[test]
fn pairs_are_read_from_rebases_and_binds_on_both_arches() {
    for (file, arch) in [("interpose-arm64.dylib", "aarch64"), ("interpose-x86_64.dylib", "x86_64")] {
        let (json, code) = check(file);
        assert_eq!(json["format"], "macho");
        assert_eq!(json["arch"], arch);
        assert_eq!(json["mode"]["kind"], "interposer");
        // The dylib exports only alloc8_*; what it provides is what its pairs replace.
        assert_eq!(present(&json, "malloc"), ["malloc", "free", "calloc", "realloc"]);
        assert_eq!(present(&json, "usable-size"), ["malloc_size"]);
        let pairs = hazard(&json, "interpose-pairs").expect("the pairs are listed");
        assert_eq!(pairs["names"], serde_json::json!(["malloc", "free", "calloc", "realloc", "malloc_size"]));
        assert!(pairs["detail"].as_str().unwrap().contains("malloc with alloc8_malloc"));
        // Its replacements are not a prefixed family it offers.
        assert!(json["prefixed_families"].as_array().unwrap().is_empty(), "{}", json["prefixed_families"]);
        // What is missing is said, family by family.
        assert!(gaps(&json, "malloc").contains(&("reallocf".into(), "problem".into())));
        assert!(gaps(&json, "aligned").iter().any(|(n, _)| n == "posix_memalign"));
        assert_eq!(gaps(&json, "malloc-fork").len(), 3);
        assert!(gaps(&json, "malloc-zone").contains(&("malloc_zone_from_ptr".into(), "problem".into())));
        // libc++'s operator new calls malloc, which the pairs replace: handled.
        assert!(gaps(&json, "cxx-new").contains(&("_Znwm".into(), "info".into())));
        // glibc's names are not asked of a dylib.
        assert!(json["families"].as_array().unwrap().iter().all(|f| f["family"] != "glibc-compat" && f["family"] != "glibc-aliases"));
        assert!(hazard(&json, "dropped-interpose-pairs").is_none() && hazard(&json, "unread-interpose-pairs").is_none());
        assert_eq!(code, 1);
        assert_eq!(json["verdict"]["sound"], false);
    }
}

#[test]
fn a_dylib_that_defines_malloc_itself_has_its_pair_dropped() {
    let (json, code) = check("self-arm64.dylib");
    let dropped = hazard(&json, "dropped-interpose-pairs").expect("the dropped pair is reported");
    assert_eq!(dropped["severity"], "problem");
    assert_eq!(dropped["names"], serde_json::json!(["malloc"]));
    // The free pair is sound.
    assert_eq!(hazard(&json, "interpose-pairs").unwrap()["names"], serde_json::json!(["free"]));
    assert_eq!(code, 1);
}

#[test]
fn a_dylib_with_every_pair_of_the_macos_contract_is_sound() {
    let (json, code) = check("complete-x86_64.dylib");
    assert_eq!(json["mode"]["kind"], "interposer");
    let mut seen = BTreeSet::new();
    for f in json["families"].as_array().unwrap() {
        assert!(f["gaps"].as_array().unwrap().is_empty(), "{}", f);
        for n in f["present"].as_array().unwrap() {
            seen.insert(n.as_str().unwrap().to_string());
        }
    }
    // complete.txt is the whole macOS table: what check asks for, plus the
    // `--threads` pair it does not ask of others.
    let listed: BTreeSet<String> = std::fs::read_to_string(fixture("complete.txt")).unwrap().lines().map(str::to_string).collect();
    let threads: BTreeSet<String> = ["pthread_create", "pthread_exit"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, listed.difference(&threads).cloned().collect());
    assert_eq!(json["verdict"]["sound"], true, "{}", json["verdict"]);
    assert_eq!(code, 0);
}

#[test]
fn the_fixtures_are_what_gen_sh_makes_from_their_sources() {
    let dir = work_dir().join("macho-fixtures");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["gen.sh", "interpose.c", "self.c", "complete.txt"] {
        std::fs::copy(fixture(f), dir.join(f)).unwrap();
    }
    let out = std::process::Command::new("bash").arg(dir.join("gen.sh")).output().unwrap();
    assert!(out.status.success(), "gen.sh needs clang and lld:\n{}", String::from_utf8_lossy(&out.stderr));
    for f in ["interpose-arm64.dylib", "interpose-x86_64.dylib", "self-arm64.dylib", "complete-x86_64.dylib", "libSystem.tbd"] {
        let (made, kept) = (std::fs::read(dir.join(f)).unwrap(), std::fs::read(fixture(f)).unwrap());
        assert!(made == kept, "{} differs from what gen.sh makes now: run tests/fixtures/macho/gen.sh", f);
        assert!(kept.len() < 50_000);
    }
}

#[test]
fn mutated_linked_dylibs_never_panic_the_pair_reader() {
    // The bind opcodes, symbol table and section contents the pair reader
    // walks sit in __LINKEDIT and __DATA: mutate everywhere, and often there.
    let mut read = 0;
    for (i, name) in ["interpose-arm64.dylib", "self-arm64.dylib", "complete-x86_64.dylib"].iter().enumerate() {
        let original = std::fs::read(fixture(name)).unwrap();
        let lib = audit::Library::parse(std::path::Path::new(name), &original).unwrap();
        assert!(!lib.macho.as_ref().unwrap().interpose.pairs.is_empty());
        let seed = 0x6d61_6368_6f21_0000u64 ^ (i as u64 + 1);
        let mut rng = Rng(seed);
        for case in 0..400 {
            let mut data = original.clone();
            let tail = if rng.below(2) == 0 { 0 } else { data.len() - 4096.min(data.len()) };
            let flips = 1 + rng.below(24);
            for _ in 0..flips {
                let at = tail + rng.below(data.len() - tail);
                data[at] = if rng.below(3) == 0 { rng.next() as u8 } else { data[at] ^ 1 << rng.below(8) };
            }
            let result = std::panic::catch_unwind(|| {
                audit::Library::parse(std::path::Path::new(name), &data).map(|lib| {
                    let report = audit::audit(std::path::Path::new(name), &lib);
                    assert!(!report.to_text().is_empty());
                })
            });
            match result {
                Ok(Ok(())) => read += 1,
                Ok(Err(_)) => {}
                Err(_) => panic!("{} case {} (seed {:#x}): {} bytes changed from {:#x} panicked the reader", name, case, seed, flips, tail),
            }
        }
    }
    assert!(read > 0);
}

/// A universal (fat) file of the two single-arch fixtures, as `lipo` makes
/// it: a big-endian header, one entry per slice, slices 16 KiB aligned.
fn universal(slices: &[(&str, u32, u32)]) -> Vec<u8> {
    const ALIGN: usize = 1 << 14;
    let mut out = Vec::new();
    out.extend_from_slice(&0xcafe_babeu32.to_be_bytes());
    out.extend_from_slice(&(slices.len() as u32).to_be_bytes());
    let mut offset = ALIGN;
    let mut bodies = Vec::new();
    for (name, cputype, subtype) in slices {
        let body = std::fs::read(fixture(name)).unwrap();
        for field in [*cputype, *subtype, offset as u32, body.len() as u32, 14] {
            out.extend_from_slice(&field.to_be_bytes());
        }
        offset += (body.len() + ALIGN - 1) / ALIGN * ALIGN;
        bodies.push(body);
    }
    for body in bodies {
        out.resize((out.len() + ALIGN - 1) / ALIGN * ALIGN, 0);
        out.extend_from_slice(&body);
    }
    out
}

#[test]
fn a_universal_dylib_gets_one_report_per_architecture() {
    let fat = universal(&[("interpose-arm64.dylib", 0x0100_000c, 0), ("interpose-x86_64.dylib", 0x0100_0007, 3)]);
    let path = work_dir().join("universal.dylib");
    std::fs::write(&path, &fat).unwrap();
    let out = alloc8().args(["check", "--json"]).arg(&path).output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {}", e, String::from_utf8_lossy(&out.stderr)));
    let reports = json.as_array().expect("an array of reports");
    let arches: Vec<&str> = reports.iter().map(|r| r["arch"].as_str().unwrap()).collect();
    assert_eq!(arches, ["aarch64", "x86_64"]);
    for r in reports {
        assert_eq!(r["mode"]["kind"], "interposer");
        assert_eq!(present(r, "malloc"), ["malloc", "free", "calloc", "realloc"]);
    }
    // The worst verdict of the slices (both lack pairs the contract asks for).
    assert_eq!(out.status.code(), Some(1));
    let text = alloc8().args(["check"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Mach-O aarch64") && text.contains("Mach-O x86_64"), "{}", text);

    // A fat header whose slices are cut off: one line, exit 2.
    std::fs::write(&path, &fat[..20_000]).unwrap();
    let out = alloc8().args(["check"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{}", stderr);
}
