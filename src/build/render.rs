//! Renders the shim crate for one heap: the fixed templates with their few
//! `@MARKER@` substitutions, and `exports.rs` generated from the contract table.

use crate::build::checking::Checking;
use crate::build::heap_source::xx::Prepared;
use crate::build::heap_source::{Alloc8Dependency, HeapKind, HeapSource};
use crate::build::render_xx::EmittedRecipe;
use crate::build::templates;
use crate::contract::{self, Abi, Export, Family, Mode, Platform};
use std::fmt::Write;
use std::path::Path;

pub struct ShimSpec<'a> {
    pub crate_name: &'a str,
    pub heap: &'a HeapSource,
    pub mode: Mode,
    /// Empty in interpose mode.
    pub prefix: &'a str,
    /// The shared library's file name (`libfoo.so`); a prefixed library is
    /// linked by programs, so it carries it as its SONAME.
    pub soname: &'a str,
    pub platform: Platform,
    /// `--threads`: run the heap's thread hooks (interposes pthread_create).
    pub threads: bool,
    /// `--checked[=guard]`, `--guard-sample N`: the heap behind alloc8's checking layer (Linux interposers only).
    pub checked: Checking,
    /// The alloc8 crate written from the embedded copy; used unless a heap
    /// crate brings its own (which the shim must then share).
    pub alloc8_path: &'a Path,
    /// A C/C++ heap (`HeapKind::Xx`), compiled and inspected.
    pub xx: Option<&'a Prepared>,
    /// `--emit-crate` of a C/C++ heap: its build script compiles the sources
    /// copied into the crate instead of linking alloc8's archive.
    pub xx_emitted: Option<&'a EmittedRecipe>,
}

/// The generated crate, as (path relative to the crate root, contents).
pub fn render(spec: &ShimSpec) -> Vec<(&'static str, String)> {
    // Windows: the DLL only (its import library is made from the contract;
    // the sealed static archive is an ELF technique).
    let crate_types = match (spec.mode, spec.platform) {
        (Mode::Interpose, _) | (Mode::Prefixed, Platform::Windows) => "\"cdylib\"",
        (Mode::Prefixed, _) => "\"cdylib\", \"staticlib\"",
    };
    let path_dep = |p: &Path| format!("{{ path = {} }}", toml_string(&p.to_string_lossy()));
    let (heap_module, alloc8_dep, heap_deps) = match &spec.heap.kind {
        HeapKind::File { path, dependencies } => {
            (format!("#[path = {}]\nmod heap;", rust_string(&path.to_string_lossy())), path_dep(spec.alloc8_path), dependencies.clone())
        }
        HeapKind::Crate { dir, package, alloc8 } => (
            format!("// `heap` is the crate `{}`, a dependency under that name.", package),
            match alloc8 {
                Alloc8Dependency::Path(p) => path_dep(p),
                Alloc8Dependency::Registry(req) => format!("{{ version = {} }}", toml_string(req)),
            },
            format!("heap = {{ package = {}, path = {} }}\n", toml_string(package), toml_string(&dir.to_string_lossy())),
        ),
        HeapKind::Xx(_) => (
            "// `heap` calls the C/C++ heap's xx* functions (rendered by alloc8).\nmod heap;".to_string(),
            path_dep(spec.alloc8_path),
            String::new(),
        ),
    };
    let cargo_toml = fill(
        templates::SHIM_CARGO_TOML,
        &[
            ("@CRATE_NAME@", spec.crate_name.to_string()),
            ("@CRATE_TYPES@", crate_types.to_string()),
            ("@ALLOC8_DEPENDENCY@", alloc8_dep),
            ("@HEAP_DEPENDENCIES@", heap_deps),
            // cc from crates.io: the emitted crate compiles a C/C++ heap where it is built.
            ("@BUILD_DEPENDENCIES@", if spec.xx_emitted.is_some() { "\n[build-dependencies]\ncc = \"1.2\"" } else { "" }.to_string()),
        ],
    );
    // The C++ operators exist only to interpose; prefixed mode has none.
    let platform_modules = match (spec.platform, spec.mode) {
        (Platform::Macos, Mode::Prefixed) => "mod macos_prefixed;",
        (Platform::Macos, _) => "mod macos;\nmod macos_cxx;",
        // DllMain, and in interpose mode the inline hooks on the C runtimes.
        (Platform::Windows, _) => "mod windows;",
        (_, Mode::Interpose) => {
            "mod runtime;\n#[cfg(target_os = \"linux\")]\nmod cxx;\n#[cfg(target_os = \"linux\")]\nmod inert;\n#[cfg(target_os = \"linux\")]\nmod threads;"
        }
        (_, Mode::Prefixed) => "mod runtime;\n#[cfg(target_os = \"linux\")]\nmod inert;\n#[cfg(target_os = \"linux\")]\nmod threads;",
    };
    // `--checked` registers the checking layer in the heap's place; without
    // it the shim is the same text as ever.
    let (heap_static, shim_heap) =
        spec.checked.heap_static().or_else(|| tagged(spec)).unwrap_or_else(|| match (spec.platform, spec.mode) {
            // The exports' own paths count (record_ and detour_: see `detour`).
            (Platform::Linux, Mode::Interpose) => ("use heap::__ALLOC8_HEAP as HEAP;".into(), "heap::__Alloc8Heap".into()),
            // No recording path: every call counts here, if the heap asks.
            _ => ("use COUNTING as HEAP;".into(), "alloc8::observer::Counting<heap::__Alloc8Heap>".into()),
        });
    let lib_rs = fill(
        templates::SHIM_LIB_RS,
        &[
            ("@HEAP_STATIC@", heap_static.to_string()),
            ("@SHIM_HEAP@", shim_heap.to_string()),
            ("@HEAP_MODULE@", heap_module),
            ("@HEAP_NAME@", rust_string(&spec.heap.name)),
            ("@THREADS@", spec.threads.to_string()),
            ("@PLATFORM_MODULES@", platform_modules.to_string()),
        ],
    );
    let mut files = vec![("Cargo.toml", cargo_toml), ("build.rs", build_rs(spec)), ("src/lib.rs", lib_rs)];
    if let Some(xx) = spec.xx {
        files.push(("src/heap.rs", crate::build::render_xx::heap_rs(&xx.provided, xx.promises)));
    }
    if spec.xx_emitted.is_some() {
        files.push((
            "build_heap.rs",
            fill(templates::XX_BUILD_HEAP_RS, &[("@LIB_NAME@", crate::build::heap_source::xx::LIB_NAME.to_string())]),
        ));
    }
    if (spec.platform, spec.mode) == (Platform::Macos, Mode::Prefixed) {
        // The portable prefixed family, as on Linux and Windows.
        files.push(("src/macos_prefixed.rs", templates::SHIM_MACOS_PREFIXED_RS.to_string()));
        files.push(("src/exports.rs", exports_rs(spec.platform, spec.mode, spec.prefix, false, Checking::Off)));
        return files;
    }
    if spec.platform == Platform::Macos {
        files.push(("src/macos.rs", templates::SHIM_MACOS_RS.to_string()));
        files.push(("src/macos_cxx.rs", templates::SHIM_MACOS_CXX_RS.to_string()));
        files.push(("src/exports.rs", crate::build::render_macos::exports_rs(spec.threads)));
        return files;
    }
    if spec.platform == Platform::Windows {
        files.push(("src/exports.rs", exports_rs(spec.platform, spec.mode, spec.prefix, spec.threads, Checking::Off)));
        files.extend(templates::SHIM_WINDOWS.iter().map(|(n, t)| (*n, t.to_string())));
        return files;
    }
    files.push(("src/runtime.rs", templates::SHIM_RUNTIME_RS.to_string()));
    files.push(("src/threads.rs", templates::SHIM_THREADS_RS.to_string()));
    files.push(("src/exports.rs", exports_rs(spec.platform, spec.mode, spec.prefix, spec.threads, spec.checked)));
    files.push(("src/inert.rs", templates::SHIM_INERT_RS.to_string()));
    if spec.mode == Mode::Interpose {
        files.push(("src/cxx.rs", templates::SHIM_CXX_RS.to_string()));
    }
    files
}

fn build_rs(spec: &ShimSpec) -> String {
    let soname = match spec.mode {
        // Programs link it: without a SONAME, linking it by path would record that path.
        // (-Xlinker passes the name whole; -Wl, would split it at commas.)
        Mode::Prefixed => format!(
            "println!(\"cargo:rustc-cdylib-link-arg=-Xlinker\");\n        println!(\"cargo:rustc-cdylib-link-arg=-soname={{}}\", {});",
            rust_string(spec.soname)
        ),
        Mode::Interpose => "// No SONAME: an interposing library is preloaded, not linked.".to_string(),
    };
    let install_name = match spec.mode {
        // Programs link it: they find it through their run path.
        Mode::Prefixed => format!("println!(\"cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/{{}}\", {});", rust_string(spec.soname)),
        Mode::Interpose => "// Inserted by path (DYLD_INSERT_LIBRARIES): its install name does not matter.".to_string(),
    };
    let link = match (spec.xx_emitted, spec.xx) {
        (Some(recipe), _) => crate::build::render_xx::compile_lines(recipe),
        (None, Some(xx)) => crate::build::render_xx::link_lines(xx),
        (None, None) => "// The heap is Rust: nothing native to link.".to_string(),
    };
    fill(templates::SHIM_BUILD_RS, &[("@SONAME@", soname), ("@INSTALL_NAME@", install_name), ("@LINK@", link)])
}

/// One `#[export_name]` wrapper per contract row for this platform and mode.
/// A Windows redirect DLL must tell the heap's blocks from the C runtimes':
/// a C heap without `xxowns` gets alloc8's keyed header on every block
/// (`alloc8::tagged`) in its place.
fn tagged(spec: &ShimSpec) -> Option<(String, String)> {
    let xx = spec.xx?;
    if spec.platform != Platform::Windows || spec.mode != Mode::Interpose || xx.provided.owns {
        return None;
    }
    let ty = "alloc8::tagged::Tagged<heap::__Alloc8Heap>";
    Some((format!("static HEAP: {} = alloc8::tagged::Tagged::new(&heap::__ALLOC8_HEAP);", ty), ty.to_string()))
}

/// `checked` (Linux interposers): under the checking layer each allocation
/// row's export is a stub that passes its caller's address to the wrapper
/// (see `write_checked`); guard sampling finds its rare callers by unwinding.
pub fn exports_rs(platform: Platform, mode: Mode, prefix: &str, threads: bool, checked: Checking) -> String {
    let mut out = String::from(
        "//! Generated by alloc8 from its contract table (src/contract.rs). Do not edit.\n\
         #![allow(clippy::missing_safety_doc, non_snake_case, unused_unsafe)]\n\n\
         use crate::HEAP;\n",
    );
    let exports = contract::shim_exports(platform, mode, prefix, threads);
    // Linux interposers forward every call when they are not the process's
    // allocator (loaded late), and record each call when `alloc8 run` asks:
    // both on the same out-of-line path.
    let forwarding = platform == Platform::Linux && mode == Mode::Interpose;
    let mut routed = Vec::new();
    for (exported, e) in &exports {
        let body = if forwarding {
            let (body, detour) = detour(e, checked != Checking::Off);
            out.push_str(&detour);
            body
        } else {
            e.body.to_string()
        };
        if checked.layered() && trail_kind(e).is_some() {
            write_checked(&mut out, exported, e, &body);
        } else if forwarding && e.body == ROUTED_BODY && e.params == "ptr: *mut u8" {
            write_routed(&mut out, exported, e);
            routed.push(e.name);
        } else {
            write_wrapper(&mut out, exported, &rust_ident(exported), e, &body);
        }
        if forwarding || e.family == Family::CxxNew {
            let _ = write!(
                out,
                "static NEXT_{ident}: crate::inert::Next = crate::inert::Next::new(b\"{name}\\0\");\n",
                ident = e.name,
                name = e.name
            );
        }
    }
    if forwarding {
        let _ = write!(
            out,
            "\n/// The routed exports' fast path: the heap's C free (`Heap::FREE_FN`), or the\n\
             /// contract's free around `Heap::free`.\n\
             #[allow(dead_code)]\n\
             unsafe extern \"C\" fn free_fast(ptr: *mut u8) {{\n    {ROUTED_BODY}\n}}\n\
             #[allow(dead_code)]\n\
             const FREE_FAST: crate::inert::FreeFn = match <crate::ShimHeap as alloc8::Heap>::FREE_FN {{\n    \
             Some(f) => f,\n    None => free_fast,\n}};\n\
             const _: () = assert!(\n    <crate::ShimHeap as alloc8::Heap>::FREE_FN.is_none()\n        \
             || (<crate::ShimHeap as alloc8::Heap>::FREES_NULL && <crate::ShimHeap as alloc8::Heap>::PRESERVES_ERRNO),\n    \
             \"this heap sets FREE_FN: it must also set FREES_NULL and PRESERVES_ERRNO (its C free keeps free's whole contract)\"\n);\n\
             /// Called once the constructor settles on the fast path (inert.rs).\n\
             pub fn settled() {{\n{}}}\n",
            routed.iter().map(|name| format!("    TO_{}.set(FREE_FAST);\n", name)).collect::<String>()
        );
    } else if platform == Platform::Linux {
        out.push_str("\n/// Nothing is routed in this mode (inert.rs).\npub fn settled() {}\n");
    }
    let malloc =
        contract::exported_name(exports.iter().find(|(_, e)| e.name == "malloc").expect("malloc is in every mode").1, mode, prefix);
    let _ = write!(
        out,
        "\n/// The entry point `runtime::bound` looks up to prove the shim is the one in use.\n\
         pub const PROBE: (&[u8], unsafe extern \"C\" fn(usize) -> *mut u8) = (b\"{malloc}\\0\", {ident});\n\
         /// Prefixed mode: the library sits beside the system allocator.\n\
         pub const PREFIXED: bool = {prefixed};\n",
        ident = rust_ident(&malloc),
        prefixed = mode == Mode::Prefixed,
    );
    if platform == Platform::Linux {
        let _ = write!(
            out,
            "/// The checking layer, if built with it: what a crash report can learn of an address,\n\
             /// and what it checks at a signal death and at exit.\n\
             pub const LAYER: Option<alloc8::crash::Layer> = {};\n",
            if checked.is_on() {
                format!(
                    "Some(alloc8::crash::Layer {{ blocks: alloc8::checked::describe, dying: || crate::HEAP.dying(), exiting: || crate::HEAP.exiting(), guards: {} }})",
                    matches!(checked, Checking::Guard | Checking::Sample(_))
                )
            } else {
                "None".to_string()
            }
        );
    }
    out
}

/// x86-64's integer argument registers, in order.
const X86_64_ARGS: [&str; 6] = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"];

/// A checked row: the export is a naked stub that loads its own return
/// address (the program's call site) into the register after the row's
/// parameters and jumps to `checked_<name>`, which hands it to the checking
/// layer and runs the row's body. Two instructions, no frame: the wrapper
/// returns straight to the program.
fn write_checked(out: &mut String, exported: &str, e: &Export, body: &str) {
    let (abi, ret) = abi_and_return(e);
    let n = e.params.split(',').filter(|p| !p.trim().is_empty()).count();
    let stubs = [
        ("x86_64", format!("\"mov {}, qword ptr [rsp]\", \"jmp {{f}}\"", X86_64_ARGS[n])),
        ("aarch64", format!("\"mov x{}, x30\", \"b {{f}}\"", n)),
    ];
    for (arch, asm) in stubs {
        let _ = write!(
            out,
            "\n#[cfg(target_arch = \"{arch}\")]\n#[export_name = \"{exported}\"]\n#[unsafe(naked)]\n\
             pub unsafe extern \"{abi}\" fn {ident}({params}){ret} {{\n    core::arch::naked_asm!({asm}, f = sym checked_{name})\n}}\n",
            ident = rust_ident(exported),
            params = e.params,
            name = e.name,
        );
    }
    let site = if n == 0 { "site: usize".to_string() } else { format!("{}, site: usize", e.params) };
    let _ = write!(
        out,
        "\nunsafe extern \"{abi}\" fn checked_{name}({site}){ret} {{\n    alloc8::checked::site::enter(site);\n    {body}\n}}\n",
        name = e.name,
    );
}

/// The body of the rows a Linux interposer routes (free, cfree, C++'s
/// unsized deletes): they take one pointer and free it.
const ROUTED_BODY: &str = "alloc8::shim::free(&HEAP, ptr)";

/// A routed row: the export is one indirect jump through `TO_<name>`,
/// which holds `detour_<name>` until the constructor settles on the fast
/// path and the heap's free from then on (`settled`; inert.rs's `Route`).
/// Naked, so the jump reads the pointer itself (`jmp [rip + TO_free]`:
/// LLVM would load it into a register first); other architectures get the
/// same in Rust.
fn write_routed(out: &mut String, exported: &str, e: &Export) {
    let ident = rust_ident(exported);
    let name = e.name;
    let _ = write!(
        out,
        "\nstatic TO_{name}: crate::inert::Route = crate::inert::Route::new(detour_{name});\n\
         \n#[cfg(target_arch = \"x86_64\")]\n#[export_name = \"{exported}\"]\n#[unsafe(naked)]\n\
         pub unsafe extern \"C\" fn {ident}(ptr: *mut u8) {{\n    \
         core::arch::naked_asm!(\"jmp qword ptr [rip + {{to}}]\", to = sym TO_{name})\n}}\n\
         \n#[cfg(target_arch = \"aarch64\")]\n#[export_name = \"{exported}\"]\n#[unsafe(naked)]\n\
         pub unsafe extern \"C\" fn {ident}(ptr: *mut u8) {{\n    \
         core::arch::naked_asm!(\"adrp x16, {{to}}\", \"ldr x16, [x16, :lo12:{{to}}]\", \"br x16\", to = sym TO_{name})\n}}\n\
         \n#[cfg(not(any(target_arch = \"x86_64\", target_arch = \"aarch64\")))]\n#[export_name = \"{exported}\"]\n\
         pub unsafe extern \"C\" fn {ident}(ptr: *mut u8) {{\n    TO_{name}.get()(ptr)\n}}\n"
    );
}

/// One contract row as an exported Rust function: `#[export_name]`, the
/// row's ABI, parameters and return type, and `body` (the row's, or the
/// row's behind a test).
pub(crate) fn write_wrapper(out: &mut String, export_name: &str, ident: &str, e: &Export, body: &str) {
    let (abi, ret) = abi_and_return(e);
    let _ = write!(
        out,
        "\n#[export_name = \"{export_name}\"]\npub unsafe extern \"{abi}\" fn {ident}({params}){ret} {{\n    {body}\n}}\n",
        params = e.params,
    );
}

/// The row's body behind the detour test, and the cold functions the test
/// leads to. The export only compares the state with 0 (one `cmp` with
/// memory and a branch: the fast path); `detour_<name>` is the recording
/// path (`alloc8 run`): the body between `alloc8::trail::try_begin` and
/// `end`, with the heap seen through the observer (`OBSERVED`, which counts
/// for a heap that asks), after a compare with RECORD that sends every other
/// call to `forward_<name>`, which hands an inert shim's call, arguments
/// unchanged, to `NEXT_<name>` (see templates/shim/src/inert.rs) and also
/// catches the first call. A free without a size has nothing to write after
/// the heap's call: `detour_` writes its entry with `try_leave` and jumps to
/// `record_<name>`, which calls the heap (nothing of the shim runs after).
fn detour(e: &Export, counted_inside: bool) -> (String, String) {
    let params: Vec<(&str, &str)> = e
        .params
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once(':').map(|(n, t)| (n.trim(), t.trim())).expect("contract params are `name: type`"))
        .collect();
    let types = params.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(", ");
    let names = params.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let has = |name: &str| params.iter().any(|(n, _)| *n == name);
    let (abi, ret) = abi_and_return(e);
    let mut other = String::new();
    let body = if e.name == "malloc" {
        // One compare sends a small request to the heap's fast path
        // (`Heap::SMALL_MAX`); the bound is 0 off the fast path and until a
        // malloc has returned, which opens it (`forward_malloc`). A heap
        // with a path for larger requests (`Heap::LARGE_MAX`) gets them
        // after a second compare of the same kind. The rest go on to
        // `malloc_other`: every call here is a tail call, so the export
        // needs no frame.
        other = format!(
            "\n#[inline(never)]\n#[allow(unused_braces)]\nunsafe extern \"C\" fn malloc_other(size: usize) -> *mut u8 {{\n    \
             if size <= crate::inert::LARGE_MAX {{\n        return forward_malloc(size);\n    }}\n    {}\n}}\n",
            e.body
        );
        "if size < crate::inert::small_below() {\n        return alloc8::shim::malloc_small(&HEAP, size);\n    }\n    \
         if crate::inert::LARGE && size < crate::inert::large_below() {\n        return alloc8::shim::malloc_large(&HEAP, size);\n    }\n    \
         if crate::inert::detouring() {\n        return detour_malloc(size);\n    }\n    malloc_other(size)"
            .to_string()
    } else {
        format!("if crate::inert::detouring() {{\n        return detour_{name}({names});\n    }}\n    {body}", name = e.name, body = e.body)
    };
    // The first calls (before the constructor) count if the heap asks;
    // a checking layer's heap counts inside it already.
    let first = if counted_inside { e.body.to_string() } else { e.body.replace("&HEAP", "&crate::COUNTING") };
    let served = if e.name == "malloc" {
        format!("let result = {{ {} }};\n    crate::inert::open_small();\n    result", first)
    } else {
        format!("{{ {} }}", first)
    };
    let record = |body: &str| {
        format!(
            "\n#[cold]\n#[inline(never)]\n#[allow(unused_braces)]\nunsafe extern \"{abi}\" fn detour_{name}({params}){ret} {{\n    \
             if !crate::inert::recording() {{\n        return forward_{name}({names});\n    }}\n    {body}\n}}\n",
            name = e.name,
            params = e.params,
        )
    };
    let recorded = match trail_kind(e) {
        Some(kind) => {
            let ptr = if has("ptr") { "ptr as usize" } else { "0" };
            let size = match (has("count"), has("size")) {
                (true, true) => "count.wrapping_mul(size)",
                (false, true) => "size",
                _ => "0",
            };
            let result = match e.ret {
                "*mut u8" => "result as usize",
                "usize" => "result",
                "i32" if has("out") => "if result == 0 { *out as usize } else { 0 }",
                _ => "0",
            };
            let call = format!(
                "static CALL: alloc8::trail::Call = alloc8::trail::Call {{ name: b\"{name}\", kind: alloc8::trail::Kind::{kind}, \
                 ptr: {has_ptr}, size: {has_size} }};",
                name = e.name,
                has_ptr = ptr != "0",
                has_size = size != "0",
            );
            // The observer counts around the heap's call here (alloc8::observer).
            let observed = e.body.replace("&HEAP", "&crate::OBSERVED.at(call)");
            if kind == "Free" && size == "0" {
                // Nothing to write after the heap's call: the entry keeps the
                // caller's return address instead (alloc8::trail::try_leave),
                // written before `detour_` moves the stack pointer (it makes
                // tail calls only: every callee is `extern "C"`, which cannot
                // unwind), and `record_` makes the call, with a frame if it needs one.
                let _ = write!(
                    other,
                    "\n#[inline(never)]\n#[allow(unused_braces, improper_ctypes_definitions)]\n\
                     unsafe extern \"{abi}\" fn record_{name}({params}, call: alloc8::trail::Pending) {{\n    {{ {observed} }}\n}}\n\
                     \n#[cold]\n#[inline(never)]\nunsafe extern \"{abi}\" fn first_{name}({params}) {{\n    \
                     alloc8::trail::first(move || detour_{name}({names}))\n}}\n",
                    name = e.name,
                    params = e.params,
                );
                record(&format!(
                    "{call}\n    \
                     let call = match alloc8::trail::try_leave(&CALL, {ptr}) {{\n        \
                     Some(call) => call,\n        \
                     None => return first_{name}({names}),\n    }};\n    \
                     record_{name}({names}, call)",
                    name = e.name,
                ))
            } else {
                record(&format!(
                    "{call}\n    \
                     let call = match alloc8::trail::try_begin(&CALL, {ptr}, {size}) {{\n        \
                     Some(call) => call,\n        \
                     None => return alloc8::trail::first(move || detour_{name}({names})),\n    }};\n    \
                     let result = {{ {observed} }};\n    alloc8::trail::end(call, {result});\n    result",
                    name = e.name,
                ))
            }
        }
        None => record(&format!("{{ {} }}", e.body)),
    };
    let detour = format!(
        "{recorded}\
         \n#[cold]\n#[inline(never)]\n#[allow(unused_braces)]\nunsafe extern \"{abi}\" fn forward_{name}({params}){ret} {{\n    \
         if crate::inert::inert() {{\n        \
         let next: unsafe extern \"{abi}\" fn({types}){ret} = core::mem::transmute(NEXT_{name}.get());\n        \
         return next({names});\n    }}\n    \
         crate::inert::first_call();\n    {served}\n}}\n{other}",
        name = e.name,
        params = e.params,
    );
    (body, detour)
}

/// What a row does to blocks, as the trail records it (None: not a heap call).
fn trail_kind(e: &Export) -> Option<&'static str> {
    Some(match (e.family, e.name) {
        (Family::Malloc, "free") | (Family::GlibcCompat, _) | (Family::CxxDelete, _) => "Free",
        (Family::Malloc, "realloc" | "reallocarray") => "Realloc",
        (Family::Malloc | Family::Aligned | Family::CxxNew, _) => "Alloc",
        (Family::UsableSize, _) => "Query",
        _ => return None,
    })
}

/// A row's ABI string and its ` -> type` (empty for a void function).
fn abi_and_return(e: &Export) -> (&'static str, String) {
    let abi = match e.abi {
        Abi::C => "C",
        Abi::CUnwind => "C-unwind",
    };
    (abi, if e.ret.is_empty() { String::new() } else { format!(" -> {}", e.ret) })
}

fn rust_ident(exported: &str) -> String {
    format!("alloc8_{}", exported)
}

pub(crate) fn fill(template: &str, substitutions: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (marker, value) in substitutions {
        assert!(out.contains(marker), "template lacks {}", marker);
        out = out.replace(marker, value);
    }
    out
}

/// A Rust string literal (Debug formatting escapes exactly as Rust reads it).
pub(crate) fn rust_string(s: &str) -> String {
    format!("{:?}", s)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file_heap() -> HeapSource {
        HeapSource {
            name: "my heap".into(),
            kind: HeapKind::File { path: PathBuf::from("/home/u/my \"heap\".rs"), dependencies: "dlmalloc = \"0.2\"\n".into() },
        }
    }

    fn render_heap(heap: &HeapSource, mode: Mode, prefix: &'static str) -> Vec<(&'static str, String)> {
        render_with_threads(heap, mode, prefix, false)
    }

    fn render_with_threads(heap: &HeapSource, mode: Mode, prefix: &'static str, threads: bool) -> Vec<(&'static str, String)> {
        let alloc8 = PathBuf::from("/cache/alloc8");
        render(&ShimSpec {
            crate_name: "alloc8_shim_x",
            heap,
            mode,
            prefix,
            soname: "libfoo.so",
            platform: Platform::Linux,
            threads,
            checked: Checking::Off,
            alloc8_path: &alloc8,
            xx: None,
            xx_emitted: None,
        })
    }

    fn spec(mode: Mode, prefix: &'static str) -> Vec<(&'static str, String)> {
        render_heap(&file_heap(), mode, prefix)
    }

    fn windows(mode: Mode, prefix: &'static str) -> Vec<(&'static str, String)> {
        let alloc8 = PathBuf::from("/cache/alloc8");
        render(&ShimSpec {
            crate_name: "alloc8_shim_x",
            heap: &file_heap(),
            mode,
            prefix,
            soname: "foo.dll",
            platform: Platform::Windows,
            threads: false,
            checked: Checking::Off,
            alloc8_path: &alloc8,
            xx: None,
            xx_emitted: None,
        })
    }

    #[test]
    fn windows_gets_dllmain_and_the_hooks_instead_of_the_elf_runtime() {
        for (mode, prefix) in [(Mode::Interpose, ""), (Mode::Prefixed, "foo")] {
            let files = windows(mode, prefix);
            let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
            for f in ["src/windows/mod.rs", "src/windows/api.rs", "src/windows/hooks.rs", "src/windows/patch.rs", "src/exports.rs"] {
                assert!(names.contains(&f), "{} missing for {:?}", f, mode);
            }
            for f in ["src/runtime.rs", "src/threads.rs", "src/cxx.rs"] {
                assert!(!names.contains(&f), "{} rendered for Windows", f);
            }
            assert!(file(&files, "src/lib.rs").contains("\nmod windows;\n"));
            // A DLL only: its import library comes from the contract, not from a staticlib.
            assert!(file(&files, "Cargo.toml").contains("crate-type = [\"cdylib\"]"));
        }
        let exports = file(&windows(Mode::Interpose, ""), "src/exports.rs");
        assert!(exports.contains("#[export_name = \"_aligned_malloc\"]"));
        assert!(exports.contains("crate::windows::api::free_in(crate::windows::api::program(), ptr)"));
        assert!(!exports.contains("posix_memalign") && !exports.contains("_Znwm"));
        let prefixed = file(&windows(Mode::Prefixed, "foo"), "src/exports.rs");
        assert!(prefixed.contains("#[export_name = \"foo_posix_memalign\"]") && !prefixed.contains("crate::windows::api"));
    }

    fn file(files: &[(&'static str, String)], name: &str) -> String {
        files.iter().find(|(n, _)| *n == name).unwrap().1.clone()
    }

    #[test]
    fn no_marker_survives_rendering() {
        for (name, text) in spec(Mode::Interpose, "").into_iter().chain(spec(Mode::Prefixed, "foo")) {
            for marker in ["@CRATE", "@HEAP", "@SHIM", "@ALLOC8", "@PLATFORM", "@SONAME"] {
                assert!(!text.contains(marker), "{} keeps {}", name, marker);
            }
        }
    }

    #[test]
    fn a_file_heap_is_a_module_with_its_own_dependencies() {
        let files = spec(Mode::Interpose, "");
        assert!(file(&files, "src/lib.rs").contains("#[path = \"/home/u/my \\\"heap\\\".rs\"]\nmod heap;"));
        let cargo = file(&files, "Cargo.toml");
        assert!(cargo.contains("alloc8 = { path = \"/cache/alloc8\" }\ndlmalloc = \"0.2\"\n"), "{}", cargo);
        cargo.parse::<toml::Table>().unwrap();
    }

    #[test]
    fn a_crate_heap_is_a_dependency_sharing_its_alloc8() {
        let heap = HeapSource {
            name: "myheap".into(),
            kind: HeapKind::Crate {
                dir: PathBuf::from("/src/myheap"),
                package: "my-heap".into(),
                alloc8: Alloc8Dependency::Path(PathBuf::from("/src/alloc8")),
            },
        };
        let files = render_heap(&heap, Mode::Interpose, "");
        assert!(file(&files, "src/lib.rs").contains("\n// `heap` is the crate `my-heap`"));
        assert!(!file(&files, "src/lib.rs").contains("mod heap"));
        let cargo: toml::Table = file(&files, "Cargo.toml").parse().unwrap();
        let deps = cargo["dependencies"].as_table().unwrap();
        assert_eq!(deps["alloc8"]["path"].as_str(), Some("/src/alloc8"));
        assert_eq!(deps["heap"]["package"].as_str(), Some("my-heap"));
        assert_eq!(deps["heap"]["path"].as_str(), Some("/src/myheap"));
    }

    #[test]
    fn a_c_heap_is_a_rendered_module_and_a_linked_archive() {
        use crate::build::heap_source::xx::{Prepared, XxInput};
        use crate::build::heap_source::xx_symbols::Provided;
        let heap = HeapSource { name: "bump".into(), kind: HeapKind::Xx(XxInput::Prebuilt(PathBuf::from("/h/libbump.a"))) };
        let alloc8 = PathBuf::from("/cache/alloc8");
        for cxx in [false, true] {
            let prepared = Prepared {
                lib_dir: PathBuf::from("/cache/shims/x/native"),
                provided: Provided { cxx, ..Provided::default() },
                promises: Default::default(),
                references: Default::default(),
                inputs: Vec::new(),
            };
            let files = render(&ShimSpec {
                crate_name: "alloc8_shim_bump",
                heap: &heap,
                mode: Mode::Interpose,
                prefix: "",
                soname: "libbump.so",
                platform: Platform::Linux,
                threads: false,
                checked: Checking::Off,
                alloc8_path: &alloc8,
                xx: Some(&prepared),
                xx_emitted: None,
            });
            assert!(file(&files, "src/lib.rs").contains("\nmod heap;"));
            assert!(file(&files, "src/heap.rs").contains("alloc8::register!(XxHeap = XxHeap);"));
            let build = file(&files, "build.rs");
            assert!(build.contains("cargo:rustc-link-lib=static=alloc8xx"), "{}", build);
            assert!(build.contains("\"/cache/shims/x/native\""), "{}", build);
            assert_eq!(build.contains("cargo:rustc-link-lib=dylib=stdc++"), cxx, "{}", build);
            for (name, text) in &files {
                assert!(!text.contains("@LINK@") && !text.contains("@OPTIONAL"), "{} keeps a marker", name);
            }
        }
    }

    #[test]
    fn interpose_exports_every_contract_row() {
        let exports = file(&spec(Mode::Interpose, ""), "src/exports.rs");
        let n = contract::shim_exports(Platform::Linux, Mode::Interpose, "", false).len();
        // free, cfree and C++'s unsized deletes are routed: one export per
        // architecture (x86-64, aarch64, the rest).
        let routed = ["free", "cfree", "_ZdlPv", "_ZdaPv"];
        assert_eq!(exports.matches("#[export_name").count(), n + 2 * routed.len());
        assert!(exports.contains("#[export_name = \"_Znwm\"]\npub unsafe extern \"C-unwind\" fn alloc8__Znwm(size: usize) -> *mut u8"));
        assert!(exports.contains("static NEXT__Znwm: crate::inert::Next = crate::inert::Next::new(b\"_Znwm\\0\");"));
        // Every other row compares the state with 0 once; out of line,
        // `detour_` sends a recording call to its `record_` path and the
        // rest to `forward_`, which forwards an inert shim's (and catches
        // the first call). malloc's export first sends a small request to
        // the heap's fast path: one compare with a bound that is 0 off it.
        assert_eq!(exports.matches("    if crate::inert::detouring() {\n        return detour_").count(), n - routed.len());
        // A routed row jumps through its route, which holds its `detour_`
        // path until the constructor settles on the fast path.
        for name in routed {
            assert!(exports.contains(&format!(
                "static TO_{name}: crate::inert::Route = crate::inert::Route::new(detour_{name});\n\n\
                 #[cfg(target_arch = \"x86_64\")]\n#[export_name = \"{name}\"]\n#[unsafe(naked)]\n\
                 pub unsafe extern \"C\" fn alloc8_{name}(ptr: *mut u8) {{\n    \
                 core::arch::naked_asm!(\"jmp qword ptr [rip + {{to}}]\", to = sym TO_{name})\n}}"
            )));
            assert!(exports.contains(&format!("    TO_{name}.set(FREE_FAST);\n")), "{}", name);
        }
        assert!(exports.contains("pub fn settled() {\n    TO_free.set(FREE_FAST);\n"));
        assert!(exports.contains("    Some(f) => f,\n    None => free_fast,\n"));
        assert!(exports.contains(
            "pub unsafe extern \"C\" fn alloc8_malloc(size: usize) -> *mut u8 {\n    \
             if size < crate::inert::small_below() {\n        return alloc8::shim::malloc_small(&HEAP, size);\n    }\n    \
             if crate::inert::LARGE && size < crate::inert::large_below() {\n        \
             return alloc8::shim::malloc_large(&HEAP, size);\n    }\n    \
             if crate::inert::detouring() {\n        return detour_malloc(size);\n    }\n    malloc_other(size)\n}"
        ));
        assert!(exports.contains(
            "unsafe extern \"C\" fn malloc_other(size: usize) -> *mut u8 {\n    \
             if size <= crate::inert::LARGE_MAX {\n        return forward_malloc(size);\n    }\n    \
             alloc8::shim::malloc(&HEAP, size)\n}"
        ));
        // A malloc that returned on the fast path's terms opens the bound
        // (the first calls count if the heap asks: `COUNTING`).
        assert!(exports.contains(
            "    crate::inert::first_call();\n    let result = { alloc8::shim::malloc(&crate::COUNTING, size) };\n    \
             crate::inert::open_small();\n    result\n}"
        ));
        assert_eq!(exports.matches("crate::inert::open_small()").count(), 1);
        // `detour_` records, and sends every other call to `forward_`.
        assert_eq!(exports.matches("    if !crate::inert::recording() {\n        return forward_").count(), n);
        assert_eq!(exports.matches("    if crate::inert::inert() {").count(), n);
        // ... and the first call into the shim (it installs the panic hook).
        assert_eq!(exports.matches("    crate::inert::first_call();").count(), n);
        assert!(exports.contains(
            "    if crate::inert::detouring() {\n        return detour__ZdlPvmSt11align_val_t(ptr, size, align);\n    }\n    \
             alloc8::shim::free_aligned_sized(&HEAP, ptr, size, align)\n}"
        ));
        // A free with a size writes its result after the heap's call ...
        assert!(exports.contains(
            "unsafe extern \"C\" fn detour__ZdlPvmSt11align_val_t(ptr: *mut u8, size: usize, align: usize) {\n    \
             if !crate::inert::recording() {\n        return forward__ZdlPvmSt11align_val_t(ptr, size, align);\n    }\n    \
             static CALL: alloc8::trail::Call = alloc8::trail::Call { name: b\"_ZdlPvmSt11align_val_t\", kind: alloc8::trail::Kind::Free, \
             ptr: true, size: true };\n    \
             let call = match alloc8::trail::try_begin(&CALL, ptr as usize, size) {\n        \
             Some(call) => call,\n        \
             None => return alloc8::trail::first(move || detour__ZdlPvmSt11align_val_t(ptr, size, align)),\n    };\n    \
             let result = { alloc8::shim::free_aligned_sized(&crate::OBSERVED.at(call), ptr, size, align) };\n    \
             alloc8::trail::end(call, 0);\n    result\n}"
        ));
        // ... one without leaves for the heap: nothing of the shim runs after it.
        assert!(exports.contains(
            "    let call = match alloc8::trail::try_leave(&CALL, ptr as usize) {\n        \
             Some(call) => call,\n        None => return first_free(ptr),\n    };\n    record_free(ptr, call)\n}"
        ));
        assert!(exports.contains(
            "unsafe extern \"C\" fn record_free(ptr: *mut u8, call: alloc8::trail::Pending) {\n    \
             { alloc8::shim::free(&crate::OBSERVED.at(call), ptr) }\n}"
        ));
        assert!(
            exports.contains("alloc8::trail::try_leave(&CALL, ptr as usize)") && exports.contains("fn record__ZdlPv(ptr: *mut u8, call")
        );
        assert!(exports.contains(
            "unsafe extern \"C\" fn forward__ZdlPvmSt11align_val_t(ptr: *mut u8, size: usize, align: usize) {\n    \
             if crate::inert::inert() {\n        \
             let next: unsafe extern \"C\" fn(*mut u8, usize, usize) = core::mem::transmute(NEXT__ZdlPvmSt11align_val_t.get());\n        \
             return next(ptr, size, align);\n    }\n    \
             crate::inert::first_call();\n    { alloc8::shim::free_aligned_sized(&crate::COUNTING, ptr, size, align) }\n}"
        ));
        // What the trail records: the block made, the one freed, a query's answer.
        let call = |name: &str, kind: &str, ptr: bool, size: bool| {
            std::format!(
                "static CALL: alloc8::trail::Call = alloc8::trail::Call {{ name: b\"{}\", kind: alloc8::trail::Kind::{}, ptr: {}, size: {} }};",
                name, kind, ptr, size
            )
        };
        assert!(exports.contains(&call("calloc", "Alloc", false, true)));
        assert!(exports.contains("alloc8::trail::try_begin(&CALL, 0, count.wrapping_mul(size))"));
        assert!(exports.contains(&call("realloc", "Realloc", true, true)));
        assert!(exports.contains("alloc8::trail::try_begin(&CALL, ptr as usize, size)"));
        assert!(exports.contains("alloc8::trail::end(call, if result == 0 { *out as usize } else { 0 });"));
        assert!(exports.contains(&call("malloc_usable_size", "Query", true, false)));
        assert!(exports.contains(&call("free", "Free", true, false)));
        assert!(exports.contains("pub const LAYER: Option<alloc8::crash::Layer> = None;"));
        assert!(exports.contains("static NEXT_free: crate::inert::Next"));
        assert!(exports.contains("(b\"malloc\\0\", alloc8_malloc)"));
    }

    fn checked(threads: bool) -> Vec<(&'static str, String)> {
        checked_as(threads, Checking::Redzone)
    }

    fn checked_as(threads: bool, checked: Checking) -> Vec<(&'static str, String)> {
        let alloc8 = PathBuf::from("/cache/alloc8");
        render(&ShimSpec {
            crate_name: "alloc8_shim_x",
            heap: &file_heap(),
            mode: Mode::Interpose,
            prefix: "",
            soname: "libx.so",
            platform: Platform::Linux,
            threads,
            checked,
            alloc8_path: &alloc8,
            xx: None,
            xx_emitted: None,
        })
    }

    #[test]
    fn unchecked_shims_contain_nothing_of_the_checking_layer() {
        for files in [spec(Mode::Interpose, ""), spec(Mode::Prefixed, "foo"), windows(Mode::Interpose, "")] {
            let lib = file(&files, "src/lib.rs");
            // A Linux interposer counts on its own paths; elsewhere every call goes through `COUNTING`.
            let (heap, ty) = if lib.contains("mod cxx;") {
                ("use heap::__ALLOC8_HEAP as HEAP;", "heap::__Alloc8Heap")
            } else {
                ("use COUNTING as HEAP;", "alloc8::observer::Counting<heap::__Alloc8Heap>")
            };
            assert!(lib.contains(&format!("\n{}\n#[allow(dead_code)]\ntype Alloc8Heap = heap::__Alloc8Heap;\n", heap)));
            assert!(lib
                .contains(&format!("static GLOBAL: alloc8::GlobalHeap<{}> = alloc8::GlobalHeap::new(&HEAP, std::thread::panicking);", ty)));
            assert!(lib.contains(
                "static COUNTING: alloc8::observer::Counting<Alloc8Heap> = alloc8::observer::Counting::new(&heap::__ALLOC8_HEAP);"
            ));
            for (name, text) in &files {
                assert!(!text.contains("alloc8::checked") && !text.contains("sym checked_"), "{} mentions the checking layer", name);
            }
        }
    }

    #[test]
    fn checked_shims_register_the_layer_and_pass_each_call_site() {
        let files = checked(true);
        let lib = file(&files, "src/lib.rs");
        assert!(lib.contains(
            "static HEAP: alloc8::checked::Checked<alloc8::observer::Counting<heap::__Alloc8Heap>> = alloc8::checked::Checked::new(&COUNTING, HEAP_NAME);"
        ));
        assert!(
            lib.contains("static GLOBAL: alloc8::GlobalHeap<alloc8::checked::Checked<alloc8::observer::Counting<heap::__Alloc8Heap>>> =")
        );
        let exports = file(&files, "src/exports.rs");
        // The stub puts its return address after the row's arguments and jumps to the wrapper.
        assert!(exports.contains(
            "#[cfg(target_arch = \"x86_64\")]\n#[export_name = \"malloc\"]\n#[unsafe(naked)]\n\
             pub unsafe extern \"C\" fn alloc8_malloc(size: usize) -> *mut u8 {\n    \
             core::arch::naked_asm!(\"mov rsi, qword ptr [rsp]\", \"jmp {f}\", f = sym checked_malloc)\n}"
        ));
        assert!(exports.contains("core::arch::naked_asm!(\"mov x1, x30\", \"b {f}\", f = sym checked_malloc)"));
        assert!(exports.contains("core::arch::naked_asm!(\"mov rcx, qword ptr [rsp]\", \"jmp {f}\", f = sym checked_posix_memalign)"));
        assert!(exports.contains("core::arch::naked_asm!(\"mov x3, x30\", \"b {f}\", f = sym checked__ZdlPvmSt11align_val_t)"));
        assert!(exports.contains(
            "unsafe extern \"C\" fn checked_malloc(size: usize, site: usize) -> *mut u8 {\n    alloc8::checked::site::enter(site);\n    \
             if size < crate::inert::small_below() {"
        ));
        assert!(exports.contains("unsafe extern \"C-unwind\" fn checked__Znwm(size: usize, site: usize) -> *mut u8 {"));
        let rows = contract::shim_exports(Platform::Linux, Mode::Interpose, "", true).len();
        // Two stubs (one per architecture) for every row but pthread_create, which stays as it was.
        assert_eq!(exports.matches("#[unsafe(naked)]").count(), 2 * (rows - 1));
        assert!(exports.contains("#[export_name = \"pthread_create\"]\npub unsafe extern \"C\" fn alloc8_pthread_create("));
        assert!(exports.contains(
            "pub const LAYER: Option<alloc8::crash::Layer> = Some(alloc8::crash::Layer { blocks: alloc8::checked::describe, dying: || crate::HEAP.dying(), exiting: || crate::HEAP.exiting(), guards: false });"
        ));
    }

    #[test]
    fn guard_modes_register_their_heap_and_sampling_keeps_plain_exports() {
        let files = checked_as(false, Checking::Guard);
        assert!(file(&files, "src/lib.rs")
            .contains("static HEAP: alloc8::checked::Checked<alloc8::observer::Counting<heap::__Alloc8Heap>> = alloc8::checked::Checked::guarded(&COUNTING, HEAP_NAME);"));
        assert!(file(&files, "src/exports.rs").contains("#[unsafe(naked)]"));
        let files = checked_as(false, Checking::Sample(5000));
        assert!(file(&files, "src/lib.rs").contains(
            "static HEAP: alloc8::checked::Sampled<alloc8::observer::Counting<heap::__Alloc8Heap>> = alloc8::checked::Sampled::new(&COUNTING, HEAP_NAME, 5000);"
        ));
        let exports = file(&files, "src/exports.rs");
        assert!(!exports.contains("sym checked_"), "no stubs: the fast path is the plain shim's");
        assert!(exports.contains("exiting: || crate::HEAP.exiting(), guards: true });"));
    }

    #[test]
    fn prefixed_exports_only_prefixed_names() {
        let files = spec(Mode::Prefixed, "foo");
        let exports = file(&files, "src/exports.rs");
        assert!(exports.contains("#[export_name = \"foo_malloc\"]"));
        assert!(!exports.contains("#[export_name = \"malloc\"]"));
        assert!(!exports.contains("_Znwm"));
        assert!(exports.contains("(b\"foo_malloc\\0\", alloc8_foo_malloc)"));
        assert!(exports.contains("pub const PREFIXED: bool = true;"));
        assert!(file(&files, "Cargo.toml").contains("crate-type = [\"cdylib\", \"staticlib\"]"));
        assert!(files.iter().all(|(n, _)| *n != "src/cxx.rs"), "no C++ operators in prefixed mode");
        assert!(file(&files, "build.rs").contains("println!(\"cargo:rustc-cdylib-link-arg=-soname={}\", \"libfoo.so\");"));
        assert!(!file(&files, "src/lib.rs").contains("mod cxx"));
    }

    #[test]
    fn interpose_has_the_cxx_module() {
        let files = spec(Mode::Interpose, "");
        assert!(file(&files, "src/lib.rs").contains("#[cfg(target_os = \"linux\")]\nmod cxx;"));
        assert!(file(&files, "src/exports.rs").contains("pub const PREFIXED: bool = false;"));
        file(&files, "src/cxx.rs");
    }

    #[test]
    fn macos_renders_its_own_modules_and_one_pair_per_row() {
        let alloc8 = PathBuf::from("/cache/alloc8");
        let heap = file_heap();
        let files = render(&ShimSpec {
            crate_name: "alloc8_shim_x",
            heap: &heap,
            mode: Mode::Interpose,
            prefix: "",
            soname: "libx.dylib",
            platform: Platform::Macos,
            threads: false,
            checked: Checking::Off,
            alloc8_path: &alloc8,
            xx: None,
            xx_emitted: None,
        });
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["Cargo.toml", "build.rs", "src/lib.rs", "src/macos.rs", "src/macos_cxx.rs", "src/exports.rs"]);
        assert!(file(&files, "src/lib.rs").contains("mod exports;\nmod macos;\nmod macos_cxx;\n"));
        let exports = file(&files, "src/exports.rs");
        let rows = contract::shim_exports(Platform::Macos, Mode::Interpose, "", false);
        assert_eq!(exports.matches("#[export_name = \"alloc8_").count(), rows.len());
        assert_eq!(exports.matches("    Pair { replacement: ").count(), rows.len());
        assert!(exports.contains(&format!("pub static INTERPOSE: [Pair; {}]", rows.len())));
        assert!(exports.contains("Pair { replacement: alloc8__Znwm as *const (), original: originals::_Znwm as *const () },"));
        assert!(exports.contains("pub unsafe extern \"C-unwind\" fn alloc8__Znwm(size: usize) -> *mut u8"));
        assert!(!exports.contains("#[export_name = \"malloc\"]") && !exports.contains("pthread_create"));
    }

    #[test]
    fn threads_add_pthread_create_and_nothing_else() {
        let without = spec(Mode::Interpose, "");
        let with = render_with_threads(&file_heap(), Mode::Interpose, "", true);
        assert!(!file(&without, "src/exports.rs").contains("pthread_create"));
        assert!(file(&without, "src/lib.rs").contains("const THREADS: bool = false;"));
        let exports = file(&with, "src/exports.rs");
        assert!(exports.contains("#[export_name = \"pthread_create\"]"));
        assert_eq!(exports.matches("#[export_name").count(), file(&without, "src/exports.rs").matches("#[export_name").count() + 1);
        assert!(file(&with, "src/lib.rs").contains("const THREADS: bool = true;"));
    }
}
