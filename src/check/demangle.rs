//! Symbol names as people write them: `getCustomHeap()` for the
//! `_Z13getCustomHeapv` a linker reports.

/// The demangled form of an Itanium C++ (or legacy Rust) name; None for a
/// plain C name or anything that does not demangle.
pub fn demangle(name: &str) -> Option<String> {
    if !name.starts_with("_Z") {
        return None;
    }
    let plain = cpp_demangle::Symbol::new(name.as_bytes()).ok()?.demangle().ok().filter(|d| d != name)?;
    // Rust's legacy mangling is Itanium's with the path's punctuation escaped.
    Some(if is_rust_legacy(name) { unescape_rust(&plain) } else { plain })
}

/// `_ZN...17h<16 hex digits>E`: a Rust symbol in the legacy mangling.
fn is_rust_legacy(name: &str) -> bool {
    name.starts_with("_ZN")
        && name.len() > 21
        && name.ends_with('E')
        && name[name.len() - 20..name.len() - 1].starts_with("17h")
        && name[name.len() - 17..name.len() - 1].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `_$LT$a..B$u20$as$u20$c..D$GT$::f` -> `<a::B as c::D>::f`.
fn unescape_rust(path: &str) -> String {
    const ESCAPES: [(&str, &str); 10] = [
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$u20$", " "),
        ("$RF$", "&"),
        ("$BP$", "*"),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("$C$", ","),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
    ];
    let mut out = path.replace("::_$", "::$");
    if out.starts_with("_$") {
        out.remove(0);
    }
    for (from, to) in ESCAPES {
        out = out.replace(from, to);
    }
    out.replace("..", "::")
}

#[cfg(test)]
mod tests {
    // Paths rather than `use super::*`: benches/check.rs compiles this
    // module without the test harness, where an import would be unused.
    #[test]
    fn cxx_names_demangle_and_c_names_stay() {
        assert_eq!(super::demangle("_Z13getCustomHeapv").as_deref(), Some("getCustomHeap()"));
        assert_eq!(super::demangle("_ZdlPvm").as_deref(), Some("operator delete(void*, unsigned long)"));
        assert_eq!(super::demangle("malloc"), None);
        assert_eq!(super::demangle("_Zgarbage"), None);
    }

    #[test]
    fn rust_legacy_names_read_as_rust_paths() {
        let name = "_ZN71_$LT$alloc8_shim_broken..heap..Broken$u20$as$u20$alloc8..heap..Heap$GT$4free17h0123456789abcdefE";
        assert_eq!(
            super::demangle(name).as_deref(),
            Some("<alloc8_shim_broken::heap::Broken as alloc8::heap::Heap>::free::h0123456789abcdef")
        );
    }
}
