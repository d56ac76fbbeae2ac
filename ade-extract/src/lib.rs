//! # ade-extract
//!
//! The reference spreadsheet engine of ade, `extract` (SPEC §10), registered by the host:
//!
//! ```
//! # async fn example() -> ade_core::Result<()> {
//! let runtime = ade_extract::register(ade_core::Runtime::builder()).data_dir("./ade-data").build().await?;
//! # Ok(()) }
//! ```
//!
//! Its core does not depend on a file format; it works on a sheet given as rows of [`Cell`]s:
//!
//! - [`CompiledFields::compile`] checks an [`ExtractSpec`](ade_core::config::ExtractSpec)'s fields
//!   once (patterns, bounds, allowed values) and prepares their normalized match keys.
//! - [`find_tables`] finds the tables of a sheet ([`TableRegion`]s): header rows judged by how
//!   well their cells name fields, then data rows until two blank rows or the next header.
//! - [`map_columns`] maps a table's columns to the fields ([`header_score`], [`type_fit`]; greedy
//!   in field order, one column per field) and yields the SPEC-shaped
//!   [`TableMapping`](ade_core::event::TableMapping).
//! - [`validate`] checks one value against one field and returns the first problem with its
//!   severity and issue code ([`MISSING_REQUIRED_VALUE`], …).
//!
//! - [`read_csv`] and [`read_workbook`] (XLSX, XLSM, XLS, ODS, with calamine) read inputs into
//!   grids of cells whose indices are the spreadsheet's rows and columns.
//! - [`ExtractEngine`] and [`ExtractBuilder`] run these steps end to end over CSV and workbook
//!   inputs, publish `run.table.summary` and validation issues, and write the normalized output
//!   (`normalized.xlsx` with sheets `normalized` and `issues`, or `normalized.csv` and
//!   `issues.csv` for `output_format: csv`).
mod cell;
mod csv_input;
mod detect;
mod engine;
mod fields;
mod mapping;
#[cfg(test)]
mod test_support;
mod validate;
mod workbook_input;

pub use cell::{Cell, MAX_SHEET_CELLS, MAX_VALUE_CHARS};
pub use csv_input::{CsvError, read_csv};
pub use detect::{HEADER_CELL_THRESHOLD, TableRegion, find_tables, is_blank_row, is_header_row};
pub use engine::{ExtractBuilder, ExtractEngine};
pub use fields::{CompiledField, CompiledFields, FieldError, normalize};
pub use mapping::{FIT_WEIGHT, HEADER_WEIGHT, MAP_THRESHOLD, header_score, map_columns, type_fit};
pub use validate::{
    ABOVE_MAXIMUM, BELOW_MINIMUM, INVALID_EMAIL, INVALID_TYPE, MISSING_REQUIRED_VALUE, NOT_ALLOWED_VALUE,
    PATTERN_MISMATCH, validate,
};
/// Registers the engine and its builder as `extract` on `builder`. Configurations with
/// `"engine": "extract"` are then checked when they are put ([`ExtractEngine`]'s
/// [`check`](ade_core::engine::Engine::check): every field's rules compile) and run by it.
pub fn register(builder: ade_core::RuntimeBuilder) -> ade_core::RuntimeBuilder {
    builder.engine(
        "extract",
        std::sync::Arc::new(ExtractEngine::default()),
        Some(std::sync::Arc::new(ExtractBuilder::default())),
    )
}

pub use workbook_input::{
    ROWS_PER_REPORT, WorkbookError, WorkbookFormat, WorkbookSheet, read_workbook, read_workbook_with,
};
