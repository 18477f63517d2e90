//! PE: the export directory (forwarders excluded: they are another DLL's
//! code), the import directory, and which C runtime the DLL uses.

use super::library::{Format, Library};
use object::read::pe::{ImageNtHeaders, PeFile};
use object::Object;
use serde::Serialize;
use std::collections::BTreeSet;

/// What only a PE file tells.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeFacts {
    /// The C runtime DLLs it imports from (msvcrt.dll, ucrtbase.dll or the
    /// UCRT's api-ms-win-crt-* sets, msvcr*/vcruntime*): whose malloc its
    /// own code calls.
    pub crt: Vec<String>,
    /// Every DLL it imports from.
    pub dlls: Vec<String>,
    /// An alloc8 redirect DLL (it reports, and watches DLL loads to hook
    /// the C runtimes): it replaces the CRT's allocator by hooking it.
    pub alloc8_redirect: bool,
}

impl PeFacts {
    /// The C runtime in a few words (`msvcrt.dll`, `the UCRT`...).
    pub fn crt_summary(&self) -> Option<String> {
        let mut kinds: Vec<&str> = Vec::new();
        for dll in &self.crt {
            let kind = if dll.starts_with("api-ms-win-crt-") || dll == "ucrtbase.dll" { "the UCRT (ucrtbase.dll)" } else { dll.as_str() };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        (!kinds.is_empty()).then(|| kinds.join(" and "))
    }
}

pub fn is_crt(dll: &str) -> bool {
    dll == "msvcrt.dll"
        || dll == "ucrtbase.dll"
        || dll.starts_with("api-ms-win-crt-")
        || (dll.starts_with("msvcr") && dll.ends_with(".dll"))
        || dll.starts_with("vcruntime")
}

/// DLLs every Windows installation has (in System32, or the UCRT's API
/// sets); anything else must be shipped beside the DLL that imports it.
pub fn is_system(dll: &str) -> bool {
    const SYSTEM: &[&str] = &[
        "kernel32.dll",
        "kernelbase.dll",
        "ntdll.dll",
        "user32.dll",
        "gdi32.dll",
        "advapi32.dll",
        "shell32.dll",
        "ole32.dll",
        "oleaut32.dll",
        "ws2_32.dll",
        "bcrypt.dll",
        "bcryptprimitives.dll",
        "userenv.dll",
        "psapi.dll",
        "dbghelp.dll",
        "secur32.dll",
        "crypt32.dll",
        "shlwapi.dll",
        "version.dll",
        "winmm.dll",
        "iphlpapi.dll",
        "comctl32.dll",
        "comdlg32.dll",
        "rpcrt4.dll",
        "setupapi.dll",
        "powrprof.dll",
        "ucrtbase.dll",
        "msvcrt.dll",
        "ncrypt.dll",
        "normaliz.dll",
        "synchronization.dll",
    ];
    SYSTEM.contains(&dll) || dll.starts_with("api-ms-win-") || dll.starts_with("ext-ms-")
}

/// The DLLs it imports that Windows does not have (the mingw runtime's
/// libstdc++-6.dll, libgcc_s_seh-1.dll, libwinpthread-1.dll, or the
/// program's own).
pub fn non_system(facts: &PeFacts) -> Vec<String> {
    facts.dlls.iter().filter(|d| !is_system(d)).cloned().collect()
}

pub fn read<Pe: ImageNtHeaders>(file: &PeFile<Pe>, lib: &mut Library) -> object::Result<()> {
    lib.format = Format::Pe;
    for export in file.exports()? {
        lib.defined.insert(String::from_utf8_lossy(export.name()).into_owned());
    }
    let mut dlls = BTreeSet::new();
    for import in file.imports()? {
        lib.imported.insert(String::from_utf8_lossy(import.name()).into_owned());
        dlls.insert(String::from_utf8_lossy(import.library()).to_ascii_lowercase());
    }
    let crt = dlls.iter().filter(|d| is_crt(d)).cloned().collect();
    let has = |needle: &[u8]| super::library::holds_string(file, needle);
    let alloc8_redirect = has(b"ALLOC8_REPORT\0") && has(b"LdrRegisterDllNotification\0");
    lib.pe = Some(PeFacts { crt, dlls: dlls.into_iter().collect(), alloc8_redirect });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crt_dlls_are_recognised() {
        for d in ["msvcrt.dll", "ucrtbase.dll", "api-ms-win-crt-heap-l1-1-0.dll", "msvcr100.dll", "vcruntime140.dll"] {
            assert!(is_crt(d), "{}", d);
        }
        for d in ["kernel32.dll", "msvcp140.dll", "ws2_32.dll"] {
            assert!(!is_crt(d), "{}", d);
        }
        let ucrt = PeFacts {
            crt: vec!["api-ms-win-crt-heap-l1-1-0.dll".into(), "api-ms-win-crt-runtime-l1-1-0.dll".into()],
            dlls: vec![],
            alloc8_redirect: false,
        };
        assert_eq!(ucrt.crt_summary().as_deref(), Some("the UCRT (ucrtbase.dll)"));
        assert_eq!(PeFacts::default().crt_summary(), None);
        let mingw = PeFacts {
            dlls: vec!["kernel32.dll".into(), "libstdc++-6.dll".into(), "api-ms-win-crt-heap-l1-1-0.dll".into()],
            ..PeFacts::default()
        };
        assert_eq!(non_system(&mingw), ["libstdc++-6.dll"]);
    }
}
