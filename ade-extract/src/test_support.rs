//! Helpers shared by this module's tests.

use super::{Cell, CompiledFields};
use ade_core::config::{ExtractSpec, FieldSpec, FieldType};

/// A field with only a name and a type.
pub(crate) fn field(name: &str, field_type: FieldType) -> FieldSpec {
    FieldSpec {
        name: name.to_owned(),
        label: None,
        required: false,
        field_type,
        synonyms: Vec::new(),
        pattern: None,
        min: None,
        max: None,
        allowed_values: None,
    }
}

/// `fields`, compiled.
pub(crate) fn compile(fields: Vec<FieldSpec>) -> CompiledFields {
    CompiledFields::compile(&ExtractSpec { fields, output_format: Default::default() }).expect("a valid configuration")
}

/// A text cell, or [`Cell::Empty`] for `""`.
pub(crate) fn t(text: &str) -> Cell {
    if text.is_empty() { Cell::Empty } else { Cell::Text(text.to_owned()) }
}

/// A row of text cells (`""` → empty).
pub(crate) fn row(texts: &[&str]) -> Vec<Cell> {
    texts.iter().map(|text| t(text)).collect()
}

/// The members configuration of the tests: `member_id` (integer, required, synonym `member`),
/// `name` (label `Full name`), `email` (email, synonym `e-mail address`), `joined` (date).
pub(crate) fn members() -> CompiledFields {
    let mut member_id = field("member_id", FieldType::Integer);
    member_id.required = true;
    member_id.synonyms = vec!["member".to_owned(), "member no".to_owned()];
    let mut name = field("name", FieldType::String);
    name.label = Some("Full name".to_owned());
    let mut email = field("email", FieldType::Email);
    email.synonyms = vec!["e-mail address".to_owned()];
    let joined = field("joined", FieldType::Date);
    compile(vec![member_id, name, email, joined])
}

/// CRC-32 (IEEE), as zip files use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A zip archive of `files` (name, content), stored without compression.
pub(crate) fn stored_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let u16_of = |n: usize| u16::try_from(n).expect("fits in 16 bits").to_le_bytes();
    let u32_of = |n: usize| u32::try_from(n).expect("fits in 32 bits").to_le_bytes();
    // 1980-01-01 00:00, the earliest MS-DOS date.
    let (time, date) = (0u16.to_le_bytes(), 0x21u16.to_le_bytes());
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, content) in files {
        let offset = out.len();
        let crc = crc32(content).to_le_bytes();
        let common = [
            &20u16.to_le_bytes()[..], // version needed: 2.0
            &0u16.to_le_bytes(),      // flags
            &0u16.to_le_bytes(),      // method: stored
            &time,
            &date,
            &crc,
            &u32_of(content.len()),
            &u32_of(content.len()),
            &u16_of(name.len()),
            &0u16.to_le_bytes(), // extra field length
        ]
        .concat();
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend(&common);
        out.extend(name.as_bytes());
        out.extend(*content);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes()); // version made by
        central.extend(&common);
        central.extend([0u8; 10]); // comment length, disk number, internal and external attributes
        central.extend(u32_of(offset));
        central.extend(name.as_bytes());
    }
    let central_offset = out.len();
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]); // this disk, the central directory's disk
    out.extend(u16_of(files.len()));
    out.extend(u16_of(files.len()));
    out.extend(u32_of(central.len()));
    out.extend(u32_of(central_offset));
    out.extend([0u8; 2]); // comment length
    out
}

/// The `mimetype` entry every ODS package starts with.
const ODS_MIMETYPE: &[u8] = b"application/vnd.oasis.opendocument.spreadsheet";

/// An ODS workbook with one sheet `name`: each cell a number (when it parses as one), text, or
/// empty (`""`).
pub(crate) fn ods(name: &str, rows: &[&[&str]]) -> Vec<u8> {
    let mut content = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>"#,
    );
    content.push_str(&format!(r#"<table:table table:name="{name}">"#));
    for row in rows {
        content.push_str("<table:table-row>");
        for cell in *row {
            if cell.is_empty() {
                content.push_str("<table:table-cell/>");
            } else if cell.parse::<f64>().is_ok() {
                content.push_str(&format!(
                    r#"<table:table-cell office:value-type="float" office:value="{cell}"><text:p>{cell}</text:p></table:table-cell>"#
                ));
            } else {
                content.push_str(&format!(
                    r#"<table:table-cell office:value-type="string"><text:p>{cell}</text:p></table:table-cell>"#
                ));
            }
        }
        content.push_str("</table:table-row>");
    }
    content.push_str("</table:table></office:spreadsheet></office:body></office:document-content>");
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    stored_zip(&[
        ("mimetype", ODS_MIMETYPE),
        ("META-INF/manifest.xml", manifest.as_bytes()),
        ("content.xml", content.as_bytes()),
    ])
}

/// What LibreOffice writes for a password-protected spreadsheet, reduced to its shape: an ODS
/// package whose manifest gives `content.xml` a `manifest:encryption-data` element (the cipher's
/// parameters) and whose `content.xml` is ciphertext (arbitrary bytes here).
pub(crate) fn encrypted_ods() -> Vec<u8> {
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml" manifest:size="1024"><manifest:encryption-data manifest:checksum-type="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0#sha256-1k" manifest:checksum="AAAA"><manifest:algorithm manifest:algorithm-name="http://www.w3.org/2001/04/xmlenc#aes256-cbc" manifest:initialisation-vector="AAAA"/><manifest:key-derivation manifest:key-derivation-name="PBKDF2" manifest:key-size="32" manifest:iteration-count="100000" manifest:salt="AAAA"/></manifest:encryption-data></manifest:file-entry></manifest:manifest>"#;
    stored_zip(&[
        ("mimetype", ODS_MIMETYPE),
        ("META-INF/manifest.xml", manifest.as_bytes()),
        ("content.xml", &[0x5A; 64]),
    ])
}

/// What Excel writes for a password-protected workbook, reduced to its shape: an OLE compound
/// file (version 3, 512-byte sectors) whose directory holds `EncryptionInfo` and
/// `EncryptedPackage` streams (empty here) instead of a zip package.
pub(crate) fn encrypted_workbook() -> Vec<u8> {
    const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
    const FREE: u32 = 0xFFFF_FFFF;
    let mut header = vec![0u8; 512];
    header[..8].copy_from_slice(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1");
    let mut put = |at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    put(24, &0x3Eu16.to_le_bytes()); // minor version
    put(26, &3u16.to_le_bytes()); // major version 3
    put(28, &0xFFFEu16.to_le_bytes()); // little-endian
    put(30, &9u16.to_le_bytes()); // 512-byte sectors
    put(32, &6u16.to_le_bytes()); // 64-byte mini sectors
    put(44, &1u32.to_le_bytes()); // one FAT sector
    put(48, &1u32.to_le_bytes()); // the directory starts at sector 1
    put(56, &4096u32.to_le_bytes()); // mini stream cut-off
    put(60, &END_OF_CHAIN.to_le_bytes()); // no mini FAT
    put(68, &END_OF_CHAIN.to_le_bytes()); // no DIFAT sectors
    put(76, &0u32.to_le_bytes()); // the FAT is sector 0
    for slot in (80..512).step_by(4) {
        put(slot, &FREE.to_le_bytes());
    }
    // Sector 0: the FAT (itself, then the directory's one-sector chain).
    let mut fat = Vec::with_capacity(512);
    for entry in [0xFFFF_FFFD, END_OF_CHAIN].into_iter().chain(std::iter::repeat_n(FREE, 126)) {
        fat.extend(u32::to_le_bytes(entry));
    }
    // Sector 1: the directory.
    let mut directory = Vec::with_capacity(512);
    for (name, kind) in [("Root Entry", 5u8), ("EncryptionInfo", 2), ("EncryptedPackage", 2), ("", 0)] {
        let mut entry = vec![0u8; 128];
        let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        entry[..utf16.len()].copy_from_slice(&utf16);
        let name_len = if name.is_empty() { 0 } else { utf16.len() + 2 };
        entry[64..66].copy_from_slice(&u16::try_from(name_len).expect("short").to_le_bytes());
        entry[66] = kind;
        entry[68..80].copy_from_slice(&[0xFF; 12]); // no siblings, no child
        entry[116..120].copy_from_slice(&END_OF_CHAIN.to_le_bytes()); // no data
        directory.extend(entry);
    }
    [header, fat, directory].concat()
}
