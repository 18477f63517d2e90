//! Reading a library's symbol table and judging it against the contract.
//! Used by `build` on every artifact it produces (and by `check`).

pub mod exports;

pub use exports::{read_exports, LibraryExports, ReadError};
