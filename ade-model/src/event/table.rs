//! The `run.table.summary` payload (SPEC §2.1): one table found in an input, how it was mapped and
//! how it validated.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::ValidationAggregate;
use crate::run::Extra;

/// One table of an input document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableSummary {
    /// `tbl_<file_index>_<sheet_index>_<table_index>`, unique within the run.
    pub table_id: String,
    /// The input file's name.
    pub source_file: String,
    /// The sheet's name (for CSV, the file's stem).
    pub source_sheet: String,
    /// 0-based position of the file among the run's inputs.
    pub file_index: u32,
    /// 0-based position of the sheet in its file.
    pub sheet_index: u32,
    /// 0-based position of the table in its sheet.
    pub table_index: u32,
    /// Data rows of the table.
    pub row_count: u64,
    /// Physical columns of the table (mapped + unmapped), never the number of fields.
    pub column_count: u64,
    /// How columns were matched to the configuration's fields.
    pub mapping: TableMapping,
    /// Fields whose `is_satisfied` is true.
    pub mapped_field_count: u64,
    /// Columns that matched no field.
    pub unmapped_column_count: u64,
    /// Validation counts of this table, including issues not published because of the cap.
    pub validation: ValidationAggregate,
    /// Where the table sits in its sheet.
    pub metadata: TableMetadata,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Column mapping of a table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableMapping {
    /// One entry per configured field, in configuration order.
    pub mapped_columns: Vec<MappedColumn>,
    /// Columns that matched no field, in source order.
    pub unmapped_columns: Vec<UnmappedColumn>,
}

/// How one configured field was matched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MappedColumn {
    /// The configured field.
    pub field: String,
    /// The source header that matched; `""` when none did.
    pub header: String,
    /// 0-based source column; `-1` when no column matched.
    pub source_column_index: i64,
    /// Match score in `[0, 1]`.
    pub score: f64,
    /// Whether the field is required.
    pub is_required: bool,
    /// Whether a column was found for the field: the field is *mapped* iff this is true.
    pub is_satisfied: bool,
}

/// A source column that matched no field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnmappedColumn {
    /// The source header.
    pub header: String,
    /// 0-based source column.
    pub source_column_index: i64,
    /// Its header in the normalized output, `raw_<n>`.
    pub output_header: String,
}

/// Position of a table in its sheet, as 1-based spreadsheet rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableMetadata {
    /// The header row.
    pub header_row: u64,
    /// The first data row.
    pub first_data_row: u64,
    /// The last data row.
    pub last_data_row: u64,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Extra,
}
