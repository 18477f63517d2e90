//! The raw OS layer: what the shim needs of the system, and nothing about
//! heaps. System calls ([`syscall`]), the environment ([`environ`]), the
//! process's mappings ([`maps`]), the words each thread has at its thread
//! pointer ([`tls`]), a fault's signal context ([`ucontext`]), the few C runtime entry points (errno, write, the
//! thread id: [`libc`], re-exported here), the Win32 API ([`win`]) and just
//! enough x86-64 to hook a function inline ([`x86`]). The heap-facing API
//! (the `Heap` trait, `threads::Local`, the contract in `shim`) is built on
//! these in the crate's other modules.

#[cfg(unix)]
pub mod environ;
mod libc;
/// Which mapped file an address lies in (Linux; crash reports).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub mod maps;
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod syscall;
pub(crate) mod tls;
/// A fault's signal context: where, and whether a write (Linux).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod ucontext;
#[cfg(windows)]
pub mod win;
pub mod x86;

pub use libc::*;
