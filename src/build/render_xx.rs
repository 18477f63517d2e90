//! The parts of a shim crate that differ for a C/C++ heap: the Rust heap
//! (templates/xx/heap.rs with the optional xx* functions the heap really
//! has) and the build script lines that link its archive.

use crate::build::heap_source::xx::{Prepared, Promises};
use crate::build::heap_source::xx_symbols::Provided;
use crate::build::render::fill;
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
        out.push_str(
            "\n    // The C++ runtime the heap needs (RTTI, exceptions, personality routine):\n    \
             // the system's on Linux; on Windows, which has none, its archive linked in\n    \
             // (by file name: mingw's import library libstdc++.dll.a would win otherwise).\n    \
             if std::env::var(\"CARGO_CFG_TARGET_OS\").as_deref() == Ok(\"windows\") {\n        \
             // It comes after the C runtime on the link line: what it needs of that follows it.\n        \
             for arg in [\"-l:libstdc++.a\", \"-lgcc\", \"-lgcc_eh\", \"-lmingw32\", \"-lmingwex\", \"-lmsvcrt\", \"-lkernel32\"] {\n            \
             println!(\"cargo:rustc-cdylib-link-arg={}\", arg);\n        }\n    } else {\n        \
             println!(\"cargo:rustc-link-lib=dylib=stdc++\");\n    }",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
