//! Mach-O and PE libraries written with `object::write`, for the readers
//! `check` has for the formats this machine cannot build natively.

/// A Mach-O with `names` defined in __TEXT,__text (written as an object file
/// by `object::write`, then marked MH_DYLIB: the reader sees a dylib).
pub fn macho_dylib(names: &[&str], interpose: bool) -> Vec<u8> {
    use object::write::{Object, Symbol, SymbolSection};
    use object::{Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope};
    let mut obj = Object::new(BinaryFormat::MachO, Architecture::X86_64, Endianness::Little);
    let text = obj.section_id(object::write::StandardSection::Text);
    let code = obj.append_section_data(text, &[0xc3; 64], 16);
    for (i, name) in names.iter().enumerate() {
        obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: code + i as u64,
            size: 1,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
    }
    if interpose {
        let section = obj.add_section(b"__DATA".to_vec(), b"__interpose".to_vec(), SectionKind::Data);
        obj.append_section_data(section, &[0; 16], 8);
    }
    let mut bytes = obj.write().unwrap();
    assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), object::macho::MH_OBJECT);
    bytes[12..16].copy_from_slice(&object::macho::MH_DYLIB.to_le_bytes());
    bytes
}

/// A PE32+ DLL exporting `names` (all pointing at one `ret`), written with
/// `object::write::pe` and a hand-built export directory.
pub fn pe_dll(names: &[&str]) -> Vec<u8> {
    use object::pe;
    use object::write::pe::{NtHeaders, Writer};
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort();
    let n = sorted.len() as u32;
    let dll_name = b"synthetic.dll\0";
    let tables = 40 + 4 * n + 4 * n + 2 * n;
    let strings_len: u32 = dll_name.len() as u32 + sorted.iter().map(|s| s.len() as u32 + 1).sum::<u32>();
    let mut data = Vec::new();
    let mut w = Writer::new(true, 0x1000, 0x200, &mut data);
    w.reserve_dos_header_and_stub();
    w.reserve_nt_headers(16);
    w.reserve_section_headers(2);
    let text = w.reserve_text_section(16);
    let edata = w.reserve_edata_section(tables + strings_len);
    w.write_dos_header_and_stub().unwrap();
    w.write_nt_headers(NtHeaders {
        machine: pe::IMAGE_FILE_MACHINE_AMD64,
        time_date_stamp: 0,
        characteristics: pe::IMAGE_FILE_EXECUTABLE_IMAGE | pe::IMAGE_FILE_LARGE_ADDRESS_AWARE | pe::IMAGE_FILE_DLL,
        major_linker_version: 14,
        minor_linker_version: 0,
        address_of_entry_point: 0,
        image_base: 0x1_8000_0000,
        major_operating_system_version: 6,
        minor_operating_system_version: 0,
        major_image_version: 0,
        minor_image_version: 0,
        major_subsystem_version: 6,
        minor_subsystem_version: 0,
        subsystem: pe::IMAGE_SUBSYSTEM_WINDOWS_CUI,
        dll_characteristics: 0,
        size_of_stack_reserve: 0x100000,
        size_of_stack_commit: 0x1000,
        size_of_heap_reserve: 0x100000,
        size_of_heap_commit: 0x1000,
    });
    w.write_section_headers();
    w.write_section(text.file_offset, &[0xc3; 16]);

    let base = edata.virtual_address;
    let (functions, names_at, ordinals, strings_at) = (base + 40, base + 40 + 4 * n, base + 40 + 8 * n, base + tables);
    let mut e = Vec::new();
    for v in [0u32, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&[0; 4]); // major, minor version
    for v in [strings_at, 1, n, n, functions, names_at, ordinals] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    for _ in 0..n {
        e.extend_from_slice(&text.virtual_address.to_le_bytes());
    }
    let mut at = strings_at + dll_name.len() as u32;
    for name in &sorted {
        e.extend_from_slice(&at.to_le_bytes());
        at += name.len() as u32 + 1;
    }
    for i in 0..n as u16 {
        e.extend_from_slice(&i.to_le_bytes());
    }
    e.extend_from_slice(dll_name);
    for name in &sorted {
        e.extend_from_slice(name.as_bytes());
        e.push(0);
    }
    assert_eq!(e.len() as u32, tables + strings_len);
    w.write_section(edata.file_offset, &e);
    data
}
