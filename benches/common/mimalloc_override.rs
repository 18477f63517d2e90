//! mimalloc's own override (its `libmimalloc.so` with malloc & co.) built
//! from the very sources shims/mimalloc was compiled from, with the flags
//! mimalloc's CMakeLists.txt gives its shared library (GCC, Release, the
//! default options): the yardstick for our mimalloc shim, same version,
//! same code, only the build and the wrapper differ.

use std::path::{Path, PathBuf};
use std::process::Command;

/// CMake's compile flags for the shared library, by where they come from:
/// CMAKE_C_FLAGS_RELEASE; C_STANDARD 11 with extensions; position-independent
/// shared-library code; `mi_cflags` for GCC (warnings, hidden visibility,
/// initial-exec TLS, `-fno-builtin-malloc` with MI_OVERRIDE); the shared
/// target's definitions and MI_OVERRIDE's MI_MALLOC_OVERRIDE; a release
/// build's MI_BUILD_RELEASE.
const CFLAGS: &[&str] = &[
    "-O3",
    "-DNDEBUG",
    "-std=gnu11",
    "-fPIC",
    "-Wall",
    "-Wextra",
    "-Wno-unknown-pragmas",
    "-fvisibility=hidden",
    "-Wstrict-prototypes",
    "-ftls-model=initial-exec",
    "-fno-builtin-malloc",
    "-DMI_SHARED_LIB",
    "-DMI_SHARED_LIB_EXPORT",
    "-DMI_MALLOC_OVERRIDE",
    "-DMI_BUILD_RELEASE",
    "-DMI_CMAKE_BUILD_TYPE=release",
];

/// The mimalloc sources a libmimalloc-sys build script compiled under
/// `target_dir` (the newest build): its `cargo:INCLUDE_DIR` is
/// `<registry>/libmimalloc-sys-x.y.z/c_src/mimalloc/<v2|v3>/include`.
pub fn sources_built_in(target_dir: &Path) -> Option<PathBuf> {
    let build = target_dir.join("release").join("build");
    let mut outputs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&build)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("libmimalloc-sys-"))
        .map(|e| e.path().join("output"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    outputs.sort();
    let text = std::fs::read_to_string(&outputs.last()?.1).ok()?;
    let include = text.lines().find_map(|l| l.strip_prefix("cargo:INCLUDE_DIR="))?;
    Some(Path::new(include).parent()?.to_path_buf())
}

/// `MI_MALLOC_VERSION` (e.g. 30302 for 3.3.2) of the sources at `root`.
pub fn version(root: &Path) -> Option<String> {
    let header = std::fs::read_to_string(root.join("include").join("mimalloc.h")).ok()?;
    let n: u32 = header.lines().find_map(|l| l.strip_prefix("#define MI_MALLOC_VERSION"))?.split_whitespace().next()?.parse().ok()?;
    Some(format!("{}.{}.{}", n / 10000, n / 100 % 100, n % 100))
}

/// The library sources CMake compiles: the `set(mi_sources ...)` list.
fn cmake_sources(root: &Path) -> Option<Vec<PathBuf>> {
    let cmake = std::fs::read_to_string(root.join("CMakeLists.txt")).ok()?;
    let list = cmake.split("set(mi_sources").nth(1)?.split(')').next()?;
    let files: Vec<PathBuf> = list.split_whitespace().map(|f| root.join(f)).collect();
    (!files.is_empty() && files.iter().all(|f| f.is_file())).then_some(files)
}

/// Builds `<out>/libmimalloc.so.<major>` from `root` (each source compiled
/// separately, as CMake does); None if the sources are not laid out as expected.
pub fn build(root: &Path, out: &Path) -> Option<PathBuf> {
    let sources = cmake_sources(root)?;
    let major = version(root)?.split('.').next()?.to_string();
    let objects = out.join("mimalloc-override-objects");
    std::fs::create_dir_all(&objects).ok()?;
    let mut linked = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let object = objects.join(format!("{}-{}.o", i, source.file_stem()?.to_string_lossy()));
        let status = Command::new("gcc")
            .args(CFLAGS)
            .arg("-I")
            .arg(root.join("include"))
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(&object)
            .status()
            .ok()?;
        assert!(status.success(), "compiling {} failed", source.display());
        linked.push(object);
    }
    let lib = out.join(format!("libmimalloc.so.{}", major));
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", &format!("-Wl,-soname,libmimalloc.so.{}", major), "-o"])
        .arg(&lib)
        .args(&linked)
        .args(["-lpthread", "-lrt", "-latomic"])
        .status()
        .ok()?;
    assert!(status.success(), "linking {} failed", lib.display());
    Some(lib)
}

/// `benches/programs/one_jump.c` linked against `own` (the override): to be
/// preloaded in front of it, as `<one_jump>:<own>`.
pub fn one_jump(own: &Path, out: &Path) -> Option<PathBuf> {
    let lib = out.join("libone_jump.so");
    let dir = own.parent()?;
    let status = Command::new("gcc")
        .args(["-O2", "-fPIC", "-shared", "-fno-plt", "-o"])
        .arg(&lib)
        .arg(super::root().join("benches/programs/one_jump.c"))
        .arg(format!("-L{}", dir.display()))
        .arg(format!("-l:{}", own.file_name()?.to_string_lossy()))
        .status()
        .ok()?;
    assert!(status.success(), "building {} failed", lib.display());
    Some(PathBuf::from(format!("{}:{}", lib.display(), own.display())))
}
