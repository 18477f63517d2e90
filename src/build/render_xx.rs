//! The parts of a shim crate that differ for a C/C++ heap: the Rust heap
//! (templates/xx/heap.rs with the optional xx* functions the heap really
//! has) and the build script lines that link its archive.

use crate::build::heap_source::xx::{Prepared, Promises};
use crate::build::heap_source::xx_symbols::Provided;
use crate::build::render::{fill, rust_string};
use crate::build::templates;

/// `src/heap.rs`: `Heap` methods that call the heap's xx* functions.
pub fn heap_rs(p: &Provided, promises: Promises) -> String {
    let mut externs = String::new();
    let mut methods = String::new();
    let mut add = |decl: &str, method: String| {
        if !decl.is_empty() {
            externs.push_str("    ");
            externs.push_str(decl);
            externs.push('\n');
        }
        methods.push('\n');
        methods.push_str(&method);
    };
    if p.realloc {
        add(
            "fn xxrealloc(ptr: *mut u8, size: usize) -> *mut u8;",
            method("unsafe fn realloc(&self, ptr: *mut u8, size: usize) -> *mut u8", "xxrealloc(ptr, size)"),
        );
    }
    if p.free_sized {
        add(
            "fn xxfree_sized(ptr: *mut u8, size: usize);",
            method("unsafe fn free_sized(&self, ptr: *mut u8, size: usize)", "xxfree_sized(ptr, size)"),
        );
    }
    let aligned_sized = "unsafe fn free_aligned_sized(&self, ptr: *mut u8, size: usize, align: usize)";
    if p.free_aligned_sized {
        add(
            "fn xxfree_aligned_sized(ptr: *mut u8, alignment: usize, size: usize);",
            method(aligned_sized, "xxfree_aligned_sized(ptr, align, size)"),
        );
    } else if p.free_sized {
        // The size of an aligned block is not what xxfree_sized expects of a
        // block from xxmalloc: without the aligned form, plain xxfree.
        add("", method(aligned_sized, "let _ = (size, align);\n        xxfree(ptr)"));
    }
    if p.stats {
        add(
            "fn xxmalloc_stats(out: *mut XxStats) -> i32;",
            method(
                "fn stats(&self) -> Option<alloc8::Stats>",
                "let mut s = XxStats::default();\n        \
                 // Nonzero: the heap filled it in.\n        \
                 (unsafe { xxmalloc_stats(&mut s) } != 0).then_some(alloc8::Stats {\n            \
                 mallocs: s.mallocs,\n            frees: s.frees,\n            reallocs: s.reallocs,\n            \
                 bytes_allocated: s.bytes_allocated,\n            live_bytes: s.live_bytes,\n            \
                 peak_live_bytes: s.peak_live_bytes,\n        })",
            ),
        );
    }
    if p.owns {
        add("fn xxowns(ptr: *const u8) -> i32;", method("fn owns(&self, ptr: *const u8) -> bool", "unsafe { xxowns(ptr) != 0 }"));
    }
    if p.thread_init {
        add("fn xxthread_init();", method("fn thread_init(&self)", "unsafe { xxthread_init() }"));
    }
    if p.thread_cleanup {
        add("fn xxthread_cleanup();", method("fn thread_cleanup(&self)", "unsafe { xxthread_cleanup() }"));
    }
    if let Some(size) = p.created_flag {
        let ty = match size {
            1 => "u8",
            4 => "i32",
            _ => "i64",
        };
        add(
            &format!("static mut xxthread_created_flag: {};", ty),
            method(
                "fn first_thread(&self)",
                "// The heap reads it to skip locking while single-threaded; set\n        \
                 // before the second thread exists (pthread_create orders it for that thread).\n        \
                 unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!(xxthread_created_flag), 1) }",
            ),
        );
    }
    fill(
        templates::XX_HEAP_RS,
        &[
            ("@LIB_NAME@", crate::build::heap_source::xx::LIB_NAME.to_string()),
            ("@OPTIONAL_EXTERNS@", externs),
            ("@THREAD_HOOKS@", (!p.thread_symbols().is_empty()).to_string()),
            ("@OWNS@", p.owns.to_string()),
            ("@PRESERVES_ERRNO@", promises.free_preserves_errno.to_string()),
            ("@SETS_ENOMEM@", promises.sets_enomem.to_string()),
            ("@FREES_NULL@", promises.free_accepts_null.to_string()),
            ("@ALLOCATES_ZERO@", promises.malloc_accepts_zero.to_string()),
            ("@MAX_SIZE@", promises.max_size.map_or_else(|| "alloc8::shim::ADDRESS_SPACE_MAX".to_string(), |n| format!("{}", n))),
            ("@MAX_ALIGN@", promises.max_align.map_or_else(|| "usize::MAX".to_string(), |n| format!("{}", n))),
            ("@OPTIONAL_METHODS@", methods),
        ],
    )
}

fn method(signature: &str, body: &str) -> String {
    format!("    #[inline(always)]\n    {} {{\n        {}\n    }}\n", signature, body)
}

/// build.rs lines: link the heap's archive (and the C++ runtime it needs).
pub fn link_lines(p: &Prepared) -> String {
    let dir = p.lib_dir.to_string_lossy();
    let archive = p.lib_dir.join(format!("lib{}.a", crate::build::heap_source::xx::LIB_NAME));
    let mut out = format!(
        "// The C/C++ heap, compiled by alloc8 before this build.\n    \
         println!(\"cargo:rustc-link-search=native={{}}\", {dir:?});\n    \
         println!(\"cargo:rustc-link-lib=static={lib}\");\n    \
         println!(\"cargo:rerun-if-changed={{}}\", {archive:?});",
        dir = dir,
        lib = crate::build::heap_source::xx::LIB_NAME,
        archive = archive.to_string_lossy(),
    );
    if p.provided.cxx {
        out.push_str(&cxx_runtime_lines());
    }
    out
}

/// build.rs lines of an emitted crate (`--emit-crate`): compile the heap
/// copied into `heap/` with the cc crate where cargo runs (emit_xx.rs).
pub fn compile_lines(recipe: &EmittedRecipe) -> String {
    let list = |items: &[String]| items.iter().map(|s| rust_string(s)).collect::<Vec<_>>().join(", ");
    let opt = |o: &Option<String>| o.as_deref().map_or_else(|| "None".to_string(), |s| format!("Some({})", rust_string(s)));
    let defines: Vec<String> = recipe.defines.iter().map(|(n, v)| format!("({}, {})", rust_string(n), opt(v))).collect();
    let linux: Vec<String> = recipe.linux_flags.iter().map(|s| s.to_string()).collect();
    let mut out = format!(
        "// The C/C++ heap: its sources, copied into heap/ by alloc8, compiled here\n    \
         // with the cc crate (build_heap.rs), for the target cargo builds for.\n    \
         #[path = \"build_heap.rs\"]\n    mod build_heap;\n    \
         build_heap::compile(&build_heap::Recipe {{\n        \
         sources: &[{sources}],\n        include: &[{include}],\n        defines: &[{defines}],\n        \
         flags: &[{flags}],\n        c_std: {c_std},\n        cxx_std: {cxx_std},\n        linux_flags: &[{linux}],\n    }});",
        sources = list(&recipe.sources),
        include = list(&recipe.include),
        defines = defines.join(", "),
        flags = list(&recipe.flags),
        c_std = opt(&recipe.c_std),
        cxx_std = opt(&recipe.cxx_std),
        linux = list(&linux),
    );
    if recipe.cxx {
        out.push_str(&cxx_runtime_lines());
    }
    out
}

/// A C/C++ heap's settings as an emitted crate's build script gets them:
/// paths relative to the crate's root.
#[derive(Debug, Clone, Default)]
pub struct EmittedRecipe {
    pub sources: Vec<String>,
    pub include: Vec<String>,
    pub defines: Vec<(String, Option<String>)>,
    pub flags: Vec<String>,
    pub c_std: Option<String>,
    pub cxx_std: Option<String>,
    pub linux_flags: &'static [&'static str],
    /// The heap needs the C++ runtime.
    pub cxx: bool,
}

/// build.rs lines that link the C++ runtime a C++ heap needs (RTTI,
/// exceptions, the personality routine), per target OS.
fn cxx_runtime_lines() -> String {
    "\n    // The C++ runtime the heap needs (RTTI, exceptions, personality routine):\n    \
     // the system's on Linux (libstdc++) and macOS (libc++); on Windows, which has\n    \
     // none, its archive linked in (by file name: mingw's import library\n    \
     // libstdc++.dll.a would win otherwise).\n    \
     match std::env::var(\"CARGO_CFG_TARGET_OS\").as_deref() {\n        \
     Ok(\"windows\") => {\n            \
     // It comes after the C runtime on the link line: what it needs of that follows it.\n            \
     for arg in [\"-l:libstdc++.a\", \"-lgcc\", \"-lgcc_eh\", \"-lmingw32\", \"-lmingwex\", \"-lmsvcrt\", \"-lkernel32\"] {\n                \
     println!(\"cargo:rustc-cdylib-link-arg={}\", arg);\n            }\n        }\n        \
     Ok(\"macos\") => println!(\"cargo:rustc-link-lib=dylib=c++\"),\n        \
     _ => println!(\"cargo:rustc-link-lib=dylib=stdc++\"),\n    }"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The emitted crate's build-script module, compiled here as it is.
    #[allow(dead_code)]
    mod build_heap {
        include!("../../templates/xx/build_heap.rs");
    }

    #[test]
    fn the_build_script_compiles_each_language_with_its_flags() {
        use build_heap::{flags, units, Lang, Recipe};
        let recipe = Recipe {
            sources: &["heap/h/a.c", "heap/h/b.cpp", "heap/x/c.cc", "heap/h/d.c"],
            include: &["heap/h/include"],
            defines: &[("N", Some("4"))],
            flags: &["-fno-builtin-malloc"],
            c_std: None,
            cxx_std: Some("c++17"),
            linux_flags: crate::build::heap_source::codegen::c_flags(crate::contract::Mode::Interpose),
        };
        assert_eq!(units(&recipe, Lang::C), ["heap/h/a.c", "heap/h/d.c"]);
        assert_eq!(units(&recipe, Lang::Cxx), ["heap/h/b.cpp", "heap/x/c.cc"]);
        // alloc8's ELF code generation on Linux only, and first: the heap's own flags win.
        assert_eq!(flags(&recipe, "linux"), ["-fvisibility=hidden", "-ftls-model=initial-exec", "-fno-builtin-malloc"]);
        assert_eq!(flags(&recipe, "macos"), ["-fno-builtin-malloc"]);
        // The same languages as alloc8's own compile.
        for f in ["a.c", "a.cpp", "a.cc", "a.cxx", "a.c++", "a.C", "a.h", "a.rs"] {
            let ours = crate::build::heap_source::xx::lang(std::path::Path::new(f));
            assert_eq!(build_heap::lang(f).map(|l| l == Lang::Cxx), ours.map(|l| l == crate::build::heap_source::xx::Lang::Cxx), "{}", f);
        }
    }

    #[test]
    fn the_emitted_build_script_passes_the_recipe_and_links_the_cxx_runtime_per_os() {
        let recipe = EmittedRecipe {
            sources: vec!["heap/h/a \"q\".c".into()],
            include: vec!["heap/h/include".into()],
            defines: vec![("N".into(), Some("\"s\"".into())), ("X".into(), None)],
            flags: vec!["-O3".into()],
            c_std: Some("c11".into()),
            cxx_std: None,
            linux_flags: &["-fvisibility=hidden"],
            cxx: true,
        };
        let lines = compile_lines(&recipe);
        for s in [
            r#"sources: &["heap/h/a \"q\".c"],"#,
            r#"defines: &[("N", Some("\"s\"")), ("X", None)],"#,
            r#"c_std: Some("c11"),"#,
            "cxx_std: None,",
            r#"linux_flags: &["-fvisibility=hidden"],"#,
            r#"Ok("macos") => println!("cargo:rustc-link-lib=dylib=c++"),"#,
            r#"_ => println!("cargo:rustc-link-lib=dylib=stdc++"),"#,
        ] {
            assert!(lines.contains(s), "{} missing:\n{}", s, lines);
        }
        // The lines are a function body's statements.
        syn::parse_str::<syn::Block>(&format!("{{ {} }}", lines)).unwrap();
        assert!(!compile_lines(&EmittedRecipe { cxx: false, ..recipe }).contains("stdc++"));
    }

    #[test]
    fn only_the_functions_the_heap_has_are_called() {
        let bare = heap_rs(&Provided::default(), Promises::default());
        assert!(!bare.contains('@'), "{}", bare);
        assert!(bare.contains("xxmemalign(align, size)"), "alignment first, as the convention says");
        assert!(!bare.contains("xxrealloc") && !bare.contains("fn free_sized") && !bare.contains("first_thread"));
        assert!(!bare.contains("fn xxmalloc_stats") && !bare.contains("fn stats") && !bare.contains("fn owns"));
        assert!(bare.contains("const THREAD_HOOKS: bool = false;") && bare.contains("const OWNS: bool = false;"));

        let full = heap_rs(
            &Provided {
                stats: true,
                owns: true,
                realloc: true,
                free_sized: true,
                free_aligned_sized: true,
                thread_init: true,
                thread_cleanup: true,
                created_flag: Some(4),
                cxx: true,
                lock_does_nothing: false,
            },
            Promises {
                free_preserves_errno: true,
                sets_enomem: true,
                free_accepts_null: true,
                malloc_accepts_zero: false,
                max_size: Some(1 << 30),
                max_align: Some(4096),
            },
        );
        for s in [
            "fn xxrealloc(",
            "xxfree_aligned_sized(ptr, align, size)",
            "static mut xxthread_created_flag: i32;",
            "fn first_thread(&self)",
            "unsafe { xxthread_cleanup() }",
            "fn xxmalloc_stats(out: *mut XxStats) -> i32;",
            "fn stats(&self) -> Option<alloc8::Stats>",
            "unsafe { xxowns(ptr) != 0 }",
        ] {
            assert!(full.contains(s), "{} missing:\n{}", s, full);
        }
        assert!(full.contains("const THREAD_HOOKS: bool = true;"));
        assert!(full.contains("const PRESERVES_ERRNO: bool = true;") && full.contains("const SETS_ENOMEM: bool = true;"));
        assert!(bare.contains("const PRESERVES_ERRNO: bool = false;") && bare.contains("const SETS_ENOMEM: bool = false;"));
        assert!(full.contains("const FREES_NULL: bool = true;") && full.contains("const ALLOCATES_ZERO: bool = false;"));
        assert!(bare.contains("const FREES_NULL: bool = false;") && bare.contains("const ALLOCATES_ZERO: bool = false;"));
        assert!(full.contains("const MAX_SIZE: usize = 1073741824;"));
        assert!(bare.contains("const MAX_SIZE: usize = alloc8::shim::ADDRESS_SPACE_MAX;"));
        assert!(full.contains("const MAX_ALIGN: usize = 4096;"));
        assert!(bare.contains("const MAX_ALIGN: usize = usize::MAX;"));
    }

    #[test]
    fn sized_free_without_the_aligned_form_frees_aligned_blocks_plainly() {
        let h = heap_rs(&Provided { free_sized: true, ..Provided::default() }, Promises::default());
        let at = h.find("unsafe fn free_aligned_sized").unwrap();
        assert!(h[at..].contains("xxfree(ptr)"), "{}", h);
        let flag = heap_rs(&Provided { created_flag: Some(1), ..Provided::default() }, Promises::default());
        assert!(flag.contains("xxthread_created_flag: u8;"));
    }
}
