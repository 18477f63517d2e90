//! The Win32 API the Windows shim and Windows heaps use, declared by hand
//! (windows-sys would be ~270 MB of import libraries to vendor for Debian's
//! offline cargo). Only kernel32: a heap and a redirect DLL must never call
//! the C runtime they take over.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use core::ffi::c_void;

pub type Handle = *mut c_void;
pub type Module = *mut c_void;
pub type Bool = i32;

pub const MEM_COMMIT: u32 = 0x1000;
pub const MEM_RESERVE: u32 = 0x2000;
pub const MEM_RELEASE: u32 = 0x8000;
pub const MEM_FREE: u32 = 0x10000;
pub const PAGE_READWRITE: u32 = 0x04;
pub const PAGE_EXECUTE_READWRITE: u32 = 0x40;

pub const DLL_PROCESS_DETACH: u32 = 0;
pub const DLL_PROCESS_ATTACH: u32 = 1;
pub const DLL_THREAD_ATTACH: u32 = 2;
pub const DLL_THREAD_DETACH: u32 = 3;

#[repr(C)]
pub struct MemoryBasicInformation {
    pub base: *mut c_void,
    pub allocation_base: *mut c_void,
    pub allocation_protect: u32,
    pub partition_id: u16,
    pub region_size: usize,
    pub state: u32,
    pub protect: u32,
    pub kind: u32,
}

#[link(name = "kernel32")]
extern "system" {
    pub fn VirtualAlloc(addr: *mut c_void, size: usize, kind: u32, protect: u32) -> *mut c_void;
    pub fn VirtualFree(addr: *mut c_void, size: usize, kind: u32) -> Bool;
    pub fn VirtualProtect(addr: *mut c_void, size: usize, protect: u32, old: *mut u32) -> Bool;
    pub fn VirtualQuery(addr: *const c_void, info: *mut MemoryBasicInformation, len: usize) -> usize;
    pub fn FlushInstructionCache(process: Handle, addr: *const c_void, size: usize) -> Bool;
    pub fn GetCurrentProcess() -> Handle;
    pub fn GetCurrentProcessId() -> u32;
    pub fn GetModuleHandleA(name: *const u8) -> Module;
    pub fn GetModuleHandleExW(flags: u32, name: *const u16, module: *mut Module) -> Bool;
    pub fn GetModuleFileNameA(module: Module, buf: *mut u8, size: u32) -> u32;
    pub fn GetProcAddress(module: Module, name: *const u8) -> *mut c_void;
    pub fn K32EnumProcessModules(process: Handle, modules: *mut Module, size: u32, needed: *mut u32) -> Bool;
    pub fn GetEnvironmentVariableA(name: *const u8, buf: *mut u8, size: u32) -> u32;
    pub fn CreateFileA(
        path: *const u8,
        access: u32,
        share: u32,
        sec: *mut c_void,
        disposition: u32,
        flags: u32,
        template: Handle,
    ) -> Handle;
    pub fn WriteFile(file: Handle, buf: *const u8, len: u32, written: *mut u32, overlapped: *mut c_void) -> Bool;
    pub fn CloseHandle(handle: Handle) -> Bool;
    pub fn GetStdHandle(which: u32) -> Handle;
    pub fn HeapCreate(options: u32, initial: usize, maximum: usize) -> Handle;
    pub fn HeapDestroy(heap: Handle) -> Bool;
    pub fn HeapAlloc(heap: Handle, flags: u32, size: usize) -> *mut c_void;
    pub fn HeapFree(heap: Handle, flags: u32, ptr: *mut c_void) -> Bool;
    pub fn HeapSize(heap: Handle, flags: u32, ptr: *const c_void) -> usize;
    pub fn HeapLock(heap: Handle) -> Bool;
    pub fn HeapUnlock(heap: Handle) -> Bool;
    pub fn GetCurrentThreadId() -> u32;
    pub fn TlsAlloc() -> u32;
    pub fn TlsGetValue(index: u32) -> *mut c_void;
    pub fn TlsSetValue(index: u32, value: *mut c_void) -> Bool;
    pub fn CreateToolhelp32Snapshot(flags: u32, pid: u32) -> Handle;
    pub fn Thread32First(snapshot: Handle, entry: *mut ThreadEntry) -> Bool;
    pub fn Thread32Next(snapshot: Handle, entry: *mut ThreadEntry) -> Bool;
    pub fn OpenThread(access: u32, inherit: Bool, tid: u32) -> Handle;
    pub fn SuspendThread(thread: Handle) -> u32;
    pub fn ResumeThread(thread: Handle) -> u32;
    pub fn GetThreadContext(thread: Handle, context: *mut Context) -> Bool;
    pub fn SetThreadContext(thread: Handle, context: *const Context) -> Bool;
}

pub const TH32CS_SNAPTHREAD: u32 = 0x4;
pub const THREAD_SUSPEND_RESUME: u32 = 0x2;
pub const THREAD_GET_CONTEXT: u32 = 0x8;
pub const THREAD_SET_CONTEXT: u32 = 0x10;

/// `THREADENTRY32`.
#[repr(C)]
pub struct ThreadEntry {
    pub size: u32,
    pub usage: u32,
    pub thread_id: u32,
    pub owner_process_id: u32,
    pub base_priority: i32,
    pub delta_priority: i32,
    pub flags: u32,
}

/// The x64 `CONTEXT`, as bytes: only ContextFlags and Rip are used.
#[repr(C, align(16))]
pub struct Context(pub [u8; 1232]);

impl Context {
    /// CONTEXT_CONTROL (AMD64): Rip, Rsp, segment registers, flags.
    pub const CONTROL: u32 = 0x0010_0001;
    const FLAGS: usize = 0x30;
    const RIP: usize = 0xF8;

    pub fn control() -> Context {
        let mut c = Context([0; 1232]);
        c.0[Self::FLAGS..Self::FLAGS + 4].copy_from_slice(&Self::CONTROL.to_le_bytes());
        c
    }
    pub fn rip(&self) -> usize {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[Self::RIP..Self::RIP + 8]);
        u64::from_le_bytes(b) as usize
    }
    pub fn set_rip(&mut self, rip: usize) {
        self.0[Self::RIP..Self::RIP + 8].copy_from_slice(&(rip as u64).to_le_bytes());
    }
}

pub const INVALID_HANDLE_VALUE: Handle = !0usize as Handle;
pub const HEAP_ZERO_MEMORY: u32 = 0x08;

/// Appends `bytes` to the file at the NUL-terminated `path` (created if
/// missing): open, one write, close, as the Unix report channel does.
pub fn append_file(path: &[u8], bytes: &[u8]) {
    const FILE_APPEND_DATA: u32 = 0x4;
    const SHARE_READ_WRITE: u32 = 0x1 | 0x2;
    const OPEN_ALWAYS: u32 = 4;
    const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
    unsafe {
        let h = CreateFileA(
            path.as_ptr(),
            FILE_APPEND_DATA,
            SHARE_READ_WRITE,
            core::ptr::null_mut(),
            OPEN_ALWAYS,
            FILE_ATTRIBUTE_NORMAL,
            core::ptr::null_mut(),
        );
        if h == INVALID_HANDLE_VALUE {
            return;
        }
        let mut n = 0u32;
        WriteFile(h, bytes.as_ptr(), bytes.len() as u32, &mut n, core::ptr::null_mut());
        CloseHandle(h);
    }
}

/// Writes `bytes` to the process's standard error handle.
pub fn write_stderr(bytes: &[u8]) {
    const STD_ERROR_HANDLE: u32 = -12i32 as u32;
    unsafe {
        let h = GetStdHandle(STD_ERROR_HANDLE);
        if h.is_null() || h == INVALID_HANDLE_VALUE {
            return;
        }
        let mut n = 0u32;
        WriteFile(h, bytes.as_ptr(), bytes.len() as u32, &mut n, core::ptr::null_mut());
    }
}

/// The value of an environment variable into `buf` (NUL-terminated); its length, or None if unset or too long.
pub fn env(name: &[u8], buf: &mut [u8]) -> Option<usize> {
    let n = unsafe { GetEnvironmentVariableA(name.as_ptr(), buf.as_mut_ptr(), buf.len() as u32) } as usize;
    if n == 0 || n >= buf.len() {
        None
    } else {
        Some(n)
    }
}
