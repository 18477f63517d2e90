//! The files alloc8 writes into every generated shim, embedded in the binary
//! so an installed `alloc8` works from any directory.

/// The alloc8 crate (heap trait and contract logic) the shim depends on.
pub const ALLOC8_CRATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../crates/alloc8/Cargo.toml")),
    ("src/lib.rs", include_str!("../crates/alloc8/src/lib.rs")),
    ("src/heap.rs", include_str!("../crates/alloc8/src/heap.rs")),
    ("src/global.rs", include_str!("../crates/alloc8/src/global.rs")),
    ("src/os.rs", include_str!("../crates/alloc8/src/os.rs")),
    ("src/report.rs", include_str!("../crates/alloc8/src/report.rs")),
    ("src/shim.rs", include_str!("../crates/alloc8/src/shim.rs")),
];

/// The alloc8 crate's version: the cache keeps one copy per version.
pub const ALLOC8_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The shim crate's templates; `@NAME@` markers are filled in by `render`.
pub const SHIM_CARGO_TOML: &str = include_str!("../templates/shim/Cargo.toml");
pub const SHIM_BUILD_RS: &str = include_str!("../templates/shim/build.rs");
pub const SHIM_LIB_RS: &str = include_str!("../templates/shim/src/lib.rs");
pub const SHIM_RUNTIME_RS: &str = include_str!("../templates/shim/src/runtime.rs");
pub const SHIM_CXX_RS: &str = include_str!("../templates/shim/src/cxx.rs");
