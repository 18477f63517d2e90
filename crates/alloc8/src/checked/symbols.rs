//! Names for addresses, without allocating: the dynamic linker says which
//! object an address is in (`dladdr1`), and the object's own file gives the
//! function or variable around it, from its full symbol table (`.symtab`,
//! present unless the file was stripped; else `.dynsym`). The file is
//! mapped read-only through raw system calls and parsed in place.

use crate::os::syscall;
use core::ffi::c_void;

#[repr(C)]
struct DlInfo {
    fname: *const u8,
    fbase: usize,
    sname: *const u8,
    saddr: usize,
}

/// `<link.h>`'s public head of `struct link_map`.
#[repr(C)]
struct LinkMap {
    addr: usize,
    name: *const u8,
}

extern "C" {
    fn dladdr1(addr: *const c_void, info: *mut DlInfo, extra: *mut *mut c_void, flags: i32) -> i32;
}

const RTLD_DL_LINKMAP: i32 = 2;
const PATH_CAP: usize = 512;
const FILES: usize = 8;

/// What an address is.
pub struct Symbol<'a> {
    /// The object's path.
    pub module: &'a [u8],
    /// The function or variable containing the address, if any is named.
    pub name: Option<&'a [u8]>,
    /// The address minus the symbol's start (or minus the object's base without a name).
    pub offset: usize,
    /// The address as the object's file numbers it (what `addr2line -e <module>` takes).
    pub file_address: usize,
}

struct Mapped {
    /// The object's load bias (`l_addr`): file addresses plus this are run-time addresses.
    bias: usize,
    path: [u8; PATH_CAP],
    path_len: usize,
    data: usize,
    len: usize,
}

/// Looks addresses up, keeping the few files it mapped for its lifetime
/// (a report names a handful of objects).
pub struct Symbolizer {
    files: [Option<Mapped>; FILES],
}

impl Default for Symbolizer {
    fn default() -> Self {
        Symbolizer::new()
    }
}

impl Symbolizer {
    pub const fn new() -> Self {
        const NONE: Option<Mapped> = None;
        Symbolizer { files: [NONE; FILES] }
    }

    /// The object and symbol around `addr` (None if no object contains it).
    pub fn lookup(&mut self, addr: usize) -> Option<Symbol<'_>> {
        let mut info = DlInfo { fname: core::ptr::null(), fbase: 0, sname: core::ptr::null(), saddr: 0 };
        let mut map: *mut c_void = core::ptr::null_mut();
        if unsafe { dladdr1(addr as *const c_void, &mut info, &mut map, RTLD_DL_LINKMAP) } == 0 || map.is_null() {
            return None;
        }
        let map = unsafe { &*(map as *const LinkMap) };
        let slot = self.file(map)?;
        let file = self.files[slot].as_ref()?;
        let module = &file.path[..file.path_len];
        let elf = unsafe { core::slice::from_raw_parts(file.data as *const u8, file.len) };
        let file_address = addr.wrapping_sub(file.bias);
        if let Some((name, start)) = elf_symbol(elf, file_address) {
            return Some(Symbol { module, name: Some(name), offset: file_address.wrapping_sub(start), file_address });
        }
        // The dynamic symbol table, as the dynamic linker read it.
        if !info.sname.is_null() && info.saddr != 0 && info.saddr <= addr {
            let name = unsafe { c_str(info.sname) };
            return Some(Symbol { module, name: Some(name), offset: addr - info.saddr, file_address });
        }
        Some(Symbol { module, name: None, offset: addr.wrapping_sub(info.fbase), file_address })
    }

    /// The mapped file of a loaded object (mapped now if not yet).
    fn file(&mut self, map: &LinkMap) -> Option<usize> {
        for (i, f) in self.files.iter().enumerate() {
            if let Some(f) = f {
                if f.bias == map.addr {
                    return Some(i);
                }
            }
        }
        let free = self.files.iter().position(|f| f.is_none()).unwrap_or(FILES - 1);
        let mut path = [0u8; PATH_CAP];
        let name = if map.name.is_null() { &b""[..] } else { unsafe { c_str(map.name) } };
        let path_len = if name.is_empty() {
            // The main program: its path from the kernel.
            let n = syscall::readlink(b"/proc/self/exe\0", &mut path[..PATH_CAP - 1]);
            if n <= 0 {
                return None;
            }
            n as usize
        } else if name.len() < PATH_CAP {
            path[..name.len()].copy_from_slice(name);
            name.len()
        } else {
            return None;
        };
        path[path_len] = 0;
        let (data, len) = map_file(&path[..path_len + 1]).unwrap_or((0, 0));
        self.files[free] = Some(Mapped { bias: map.addr, path, path_len, data, len });
        Some(free)
    }
}

impl Drop for Symbolizer {
    fn drop(&mut self) {
        for f in self.files.iter().flatten() {
            if f.len > 0 {
                syscall::munmap(f.data, f.len);
            }
        }
    }
}

/// The load bias of the object containing `addr` (None outside any).
pub fn module_base(addr: usize) -> Option<usize> {
    let mut info = DlInfo { fname: core::ptr::null(), fbase: 0, sname: core::ptr::null(), saddr: 0 };
    let mut unused: *mut c_void = core::ptr::null_mut();
    if unsafe { dladdr1(addr as *const c_void, &mut info, &mut unused, 0) } == 0 {
        None
    } else {
        Some(info.fbase)
    }
}

/// The addresses the object containing `addr` occupies: from its load
/// address to the end of its last loadable segment, read from its program
/// headers in memory (an ELF object maps its header with its first segment).
pub fn module_range(addr: usize) -> Option<(usize, usize)> {
    let base = module_base(addr).filter(|&b| b != 0)?;
    let header = base;
    unsafe {
        if core::ptr::read_unaligned(header as *const [u8; 4]) != *b"\x7fELF" {
            return None;
        }
        let phoff = core::ptr::read_unaligned((header + 32) as *const u64) as usize;
        let phentsize = core::ptr::read_unaligned((header + 54) as *const u16) as usize;
        let phnum = core::ptr::read_unaligned((header + 56) as *const u16) as usize;
        let mut end = 0;
        for i in 0..phnum {
            let ph = header + phoff + i * phentsize;
            const PT_LOAD: u32 = 1;
            if core::ptr::read_unaligned(ph as *const u32) == PT_LOAD {
                let vaddr = core::ptr::read_unaligned((ph + 16) as *const u64) as usize;
                let memsz = core::ptr::read_unaligned((ph + 40) as *const u64) as usize;
                end = end.max(vaddr + memsz);
            }
        }
        if end == 0 {
            return None;
        }
        Some((base, base + end))
    }
}

/// Maps a whole file read-only; `path` is NUL-terminated.
fn map_file(path: &[u8]) -> Option<(usize, usize)> {
    const O_RDONLY_CLOEXEC: i32 = 0o2000000;
    let fd = syscall::open(path, O_RDONLY_CLOEXEC, 0);
    if fd < 0 {
        return None;
    }
    let len = syscall::file_size(fd as i32).unwrap_or(0) as usize;
    let data = if len > 0 { syscall::mmap(0, len, syscall::PROT_READ, syscall::MAP_PRIVATE, fd as i32, 0) } else { -1 };
    syscall::close(fd as i32);
    if data < 0 && data > -4096 || len == 0 {
        return None;
    }
    Some((data as usize, len))
}

unsafe fn c_str<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    while *p.add(n) != 0 {
        n += 1;
    }
    core::slice::from_raw_parts(p, n)
}

/// `N` bytes at `at`, or None past the end (any offset a file gives may be bogus).
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes_at(b, at)?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes_at(b, at)?))
}
fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u64::from_le_bytes(bytes_at(b, at)?) as usize)
}

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;

/// The named function or object of a 64-bit little-endian ELF file whose
/// extent contains the file address `addr`: (name, its start address).
pub fn elf_symbol(elf: &[u8], addr: usize) -> Option<(&[u8], usize)> {
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (shoff, shentsize, shnum) = (u64_at(elf, 0x28)?, u16_at(elf, 0x3a)? as usize, u16_at(elf, 0x3c)? as usize);
    let section = |i: usize| -> Option<(u32, usize, usize, usize)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let field = |offset: usize| at.checked_add(offset);
        Some((u32_at(elf, field(4)?)?, u64_at(elf, field(0x18)?)?, u64_at(elf, field(0x20)?)?, u32_at(elf, field(0x28)?)? as usize))
    };
    for wanted in [SHT_SYMTAB, SHT_DYNSYM] {
        for i in 0..shnum {
            let (kind, offset, size, link) = match section(i) {
                Some(s) => s,
                None => break,
            };
            if kind != wanted {
                continue;
            }
            let (_, str_offset, str_size, _) = section(link)?;
            let strings = elf.get(str_offset..str_offset.checked_add(str_size)?)?;
            let symbols = elf.get(offset..offset.checked_add(size)?)?;
            if let Some(found) = containing(symbols, strings, addr) {
                return Some(found);
            }
        }
    }
    None
}

fn containing<'a>(symbols: &[u8], strings: &'a [u8], addr: usize) -> Option<(&'a [u8], usize)> {
    for sym in symbols.chunks_exact(24) {
        let kind = sym[4] & 0xf;
        // Objects, functions and GNU indirect functions, defined here.
        if !matches!(kind, 1 | 2 | 10) || u16::from_le_bytes([sym[6], sym[7]]) == 0 {
            continue;
        }
        let value = u64_at(sym, 8)?;
        let size = u64_at(sym, 16)?;
        if value <= addr && addr < value.saturating_add(size.max(1)) {
            let name_at = u32_at(sym, 0)? as usize;
            let rest = strings.get(name_at..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            if end > 0 {
                return Some((&rest[..end], value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    #[no_mangle]
    pub extern "C" fn alloc8_symbols_test_target() -> usize {
        unsafe { core::ptr::read_volatile(&42usize) }
    }

    #[test]
    fn a_module_range_holds_its_own_code() {
        let f = a_module_range_holds_its_own_code as fn() as usize;
        let (start, end) = module_range(f).expect("this test binary is an ELF object");
        assert!(start <= f && f < end, "{:x} not in {:x}..{:x}", f, start, end);
        let local = 7u8;
        assert!(module_range(&local as *const u8 as usize).is_none(), "the stack is in no object");
    }

    #[test]
    fn a_function_of_this_test_program_is_named_from_its_file() {
        let f = alloc8_symbols_test_target as extern "C" fn() -> usize as usize;
        let mut s = Symbolizer::new();
        let sym = s.lookup(f + 1).expect("the test binary is a loaded object");
        assert_eq!(sym.name, Some(&b"alloc8_symbols_test_target"[..]));
        assert_eq!(sym.offset, 1);
        // The file address is the run-time one less the load bias, a whole number of pages.
        assert_eq!((f + 1 - sym.file_address) % 4096, 0, "{:x} at run time is {:x} in the file", f + 1, sym.file_address);
        assert!(sym.file_address < f + 1);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(sym.module, exe.to_str().unwrap().as_bytes());
    }

    #[test]
    fn a_libc_function_is_named_and_a_stack_address_is_no_object() {
        extern "C" {
            fn getpid() -> i32;
        }
        let mut s = Symbolizer::new();
        let sym = s.lookup(getpid as unsafe extern "C" fn() -> i32 as usize).expect("libc is loaded");
        assert!(sym.module.windows(4).any(|w| w == b"libc"), "{:?}", core::str::from_utf8(sym.module));
        assert!(sym.name.map_or(false, |n| n.ends_with(b"getpid")), "{:?}", sym.name.map(core::str::from_utf8));
        let local = 0u64;
        assert!(s.lookup(&local as *const u64 as usize).is_none());
    }

    #[test]
    fn malformed_files_name_nothing() {
        assert_eq!(elf_symbol(b"\x7fELF\x02\x01garbage", 0), None);
        let mut header = std::vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        header[0x3c] = 5;
        header[0x3a] = 64;
        assert_eq!(elf_symbol(&header, 0x1000), None);
    }
}
