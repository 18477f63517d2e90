//! Symbol names as people write them: `getCustomHeap()` for the
//! `_Z13getCustomHeapv` a linker reports.

/// The demangled form of an Itanium C++ (or legacy Rust) name; None for a
/// plain C name or anything that does not demangle.
pub fn demangle(name: &str) -> Option<String> {
    if !name.starts_with("_Z") {
        return None;
    }
    cpp_demangle::Symbol::new(name.as_bytes()).ok()?.demangle().ok().filter(|d| d != name)
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
}
