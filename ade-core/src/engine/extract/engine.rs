//! [`ExtractEngine`] and [`ExtractBuilder`]: the `extract` engine end to end, for CSV and
//! workbook (XLSX, XLSM, XLS, ODS) inputs.
//!
//! The builder checks and compiles the configuration's fields (build phases `load_config`,
//! `validate_config`, `compile_rules`); a configuration that does not compile fails the build
//! with `config_invalid` and a message naming the field.
//!
//! The engine runs four phases over all inputs:
//!
//! 1. `extracting`: reads each input into grids of [`Cell`]s, one per sheet, and finds their
//!    tables ([`find_tables`]). The extension (any case) decides the reader: `.csv` is one sheet,
//!    index 0, named after the file's stem; `.xlsx`, `.xlsm`, `.xls` and `.ods` give their
//!    worksheets with their workbook index and name ([`read_workbook`]), only those named in the
//!    run's `input_sheet_names` when given. Table ids are `tbl_<file>_<sheet>_<table>` (indices).
//!    An unsupported extension, an unreadable file (bytes that are not UTF-8 CSV; a corrupt,
//!    encrypted or mis-named workbook), `input_sheet_names` naming none of a workbook's
//!    worksheets, or an input whose sheets are all empty fail the run with `input_error` naming
//!    the file; a sheet without a table is a console warning.
//! 2. `mapping`: maps each table's columns to the fields ([`map_columns`]) from the header row's
//!    texts and up to 100 sampled non-blank data rows. `source_column_index` is the column in
//!    the sheet (0-based).
//! 3. `validating`: checks every non-blank data row's mapped cells ([`validate`]), publishes one
//!    `run.validation.issue` per problem (the sink caps publication) and one `run.table.summary`
//!    per table.
//! 4. `writing_output`: only in `execute` mode. The normalized rows are the configured fields in
//!    order, then `raw_1…raw_n` for unmapped columns, then `source_file`, `source_sheet`,
//!    `source_row` (one per data row); the issues are every issue, published or not. With
//!    `output_format: xlsx` (the default) both go to `outputs/normalized.xlsx`, sheets
//!    `normalized` and `issues` (numbers, booleans and dates keep their types); with
//!    `output_format: csv` to `outputs/normalized.csv` and `outputs/issues.csv`. In other modes
//!    the phase is `skipped` and nothing is written.
//!
//! Then `run.validation.summary` for the whole run. Cancellation is checked every 1,000 rows.
//!
//! Known gaps: `.xlsb` inputs are not accepted; XLSX output is limited to Excel's 1,048,575 data
//! rows per sheet (beyond that, writing fails with `engine_error`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::json;

use super::cell::Cell;
use super::csv_input::read_csv;
use super::detect::{TableRegion, find_tables, is_blank_row};
use super::fields::CompiledFields;
use super::mapping::map_columns;
use super::validate::validate;
use super::workbook_input::{WorkbookFormat, read_workbook};
use crate::config::{Configuration, EngineSpec, ExtractSpec, OutputFormat};
use crate::engine::{
    BuildArtifact, BuildContext, BuildOutcome, Builder, Engine, EngineContext, EngineFailure, EngineOutcome, EventSink,
};
use crate::event::{
    ConsoleLevel, ConsoleStream, PhaseStatus, Severity, TableMapping, TableMetadata, TableSummary, ValidationAggregate,
    ValidationIssue,
};
use crate::run::{Extra, RunMode};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};

/// Rows between two cancellation checks.
const CANCEL_CHECK_ROWS: usize = 1_000;
/// Data rows sampled per column for type fit when mapping.
const SAMPLE_ROWS: usize = 100;

/// Builds `extract` configurations: checks and compiles their fields.
#[derive(Debug, Default)]
pub struct ExtractBuilder {
    _private: (),
}

/// Runs `extract` configurations (see the module docs).
#[derive(Debug, Default)]
pub struct ExtractEngine {
    _private: (),
}

fn extract_spec(configuration: &Configuration) -> Option<&ExtractSpec> {
    match &configuration.engine {
        EngineSpec::Extract(spec) => Some(spec),
        _ => None,
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn metrics(pairs: &[(&str, u64)]) -> Option<BTreeMap<String, serde_json::Number>> {
    Some(pairs.iter().map(|(name, value)| ((*name).to_owned(), serde_json::Number::from(*value))).collect())
}

#[async_trait]
impl Builder for ExtractBuilder {
    fn needs_build(&self, configuration: &Configuration) -> bool {
        matches!(configuration.engine, EngineSpec::Extract(_))
    }

    async fn build(&self, context: BuildContext, mut sink: EventSink) -> BuildOutcome {
        let failed = |code: &str, message: String| BuildOutcome {
            result: Err(EngineFailure::new(code, message)),
            exit_code: None,
            summary: None,
        };
        let start = Instant::now();
        let _ = sink.phase_started("load_config", None).await;
        let Some(spec) = extract_spec(&context.configuration) else {
            let _ = sink.phase_completed("load_config", PhaseStatus::Failed, elapsed_ms(start), None).await;
            return failed("config_invalid", "not an extract configuration".to_owned());
        };
        let _ = sink.phase_completed("load_config", PhaseStatus::Succeeded, elapsed_ms(start), None).await;

        let start = Instant::now();
        let _ = sink.phase_started("validate_config", None).await;
        let fields = match CompiledFields::compile(spec) {
            Ok(fields) => fields,
            Err(error) => {
                let message = error.to_string();
                let _ = sink.console(ConsoleLevel::Error, ConsoleStream::Stderr, message.clone()).await;
                let _ = sink.phase_completed("validate_config", PhaseStatus::Failed, elapsed_ms(start), None).await;
                return failed("config_invalid", message);
            }
        };
        let _ = sink.phase_completed("validate_config", PhaseStatus::Succeeded, elapsed_ms(start), None).await;

        let start = Instant::now();
        let _ = sink.phase_started("compile_rules", None).await;
        let count = fields.len();
        let _ = tokio::fs::create_dir_all(&context.build_dir).await;
        let _ = sink.phase_completed("compile_rules", PhaseStatus::Succeeded, elapsed_ms(start), None).await;
        let artifact = BuildArtifact {
            build_id: context.build_id,
            fingerprint: context.fingerprint,
            dir: context.build_dir.clone(),
            data: json!({ "fields": count }),
        };
        let noun = if count == 1 { "field" } else { "fields" };
        BuildOutcome { result: Ok(artifact), exit_code: None, summary: Some(format!("{count} {noun} compiled")) }
    }
}

/// One table of a sheet, as it goes through the phases.
#[derive(Debug)]
struct Table {
    region: TableRegion,
    table_index: u32,
    table_id: String,
    headers: Vec<String>,
    mapping: TableMapping,
    row_count: u64,
    validation: ValidationAggregate,
}

/// One sheet (for CSV: one file; for a workbook: one worksheet).
#[derive(Debug)]
struct Sheet {
    file_index: u32,
    sheet_index: u32,
    /// How console lines name the sheet: the file, and for a workbook the sheet too.
    label: String,
    source_file: String,
    source_sheet: String,
    rows: Vec<Vec<Cell>>,
    tables: Vec<Table>,
}

/// One issue, kept for `issues.csv`.
#[derive(Debug)]
struct IssueRecord {
    table_id: String,
    source_file: String,
    source_sheet: String,
    issue: ValidationIssue,
}

/// `1323` → `1,323`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

fn severity_text(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

fn cancelled() -> EngineOutcome {
    EngineOutcome::failed(EngineFailure::new("cancelled", "the run was cancelled"))
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The data rows of `region` that are not blank, with their 0-based sheet index.
fn data_rows<'a>(rows: &'a [Vec<Cell>], region: &TableRegion) -> impl Iterator<Item = (usize, &'a [Cell])> {
    region
        .data_rows()
        .filter_map(move |index| rows.get(index).map(|row| (index, row.as_slice())))
        .filter(|(_, row)| !is_blank_row(row))
}

/// One sheet of an input, as read: its index in the file, its name and its cells.
type InputSheet = (u32, String, Vec<Vec<Cell>>);

/// Reads one input into its sheets' grids, or says why it cannot be. A CSV file is one sheet,
/// index 0, named after the file's stem; a workbook gives its worksheets (only those named in
/// `sheet_names`, when given).
async fn read_input(
    path: &Path,
    filename: &str,
    sheet_names: Option<&[String]>,
) -> Result<Vec<InputSheet>, EngineFailure> {
    let input_error = |message: String| EngineFailure::new("input_error", message);
    let extension = Path::new(filename).extension().map(|ext| ext.to_string_lossy().into_owned()).unwrap_or_default();
    let is_csv = extension.eq_ignore_ascii_case("csv");
    let workbook = WorkbookFormat::from_extension(&extension);
    if !is_csv && workbook.is_none() {
        return Err(input_error(format!("{filename} is not a supported input (CSV, XLSX, XLSM, XLS or ODS)")));
    }
    let bytes =
        tokio::fs::read(path).await.map_err(|error| input_error(format!("{filename} cannot be read: {error}")))?;
    let sheets = if let Some(format) = workbook {
        let sheet_names = sheet_names.map(<[String]>::to_vec);
        // A panic in the reader surfaces as a join error, reported like any unreadable file.
        tokio::task::spawn_blocking(move || read_workbook(bytes, format, sheet_names.as_deref()))
            .await
            .map_err(|error| input_error(format!("{filename} cannot be read: {error}")))?
            .map_err(|error| input_error(format!("{filename} {error}")))?
            .into_iter()
            .map(|sheet| (sheet.index, sheet.name, sheet.rows))
            .collect()
    } else {
        let rows = tokio::task::spawn_blocking(move || read_csv(&bytes))
            .await
            .map_err(|error| input_error(format!("{filename} cannot be read: {error}")))?
            .map_err(|error| input_error(format!("{filename}: {error}")))?;
        let stem = Path::new(filename)
            .file_stem()
            .map_or_else(|| filename.to_owned(), |stem| stem.to_string_lossy().into_owned());
        vec![(0, stem, rows)]
    };
    if sheets.iter().all(|(_, _, rows)| rows.iter().all(|row| is_blank_row(row))) {
        return Err(input_error(format!("{filename} is empty")));
    }
    Ok(sheets)
}

#[async_trait]
impl Engine for ExtractEngine {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    async fn run(&self, context: EngineContext, mut sink: EventSink) -> EngineOutcome {
        let Some(spec) = extract_spec(&context.configuration) else {
            return EngineOutcome::failed(EngineFailure::new("config_error", "not an extract configuration"));
        };
        let fields = match CompiledFields::compile(spec) {
            Ok(fields) => fields,
            Err(error) => return EngineOutcome::failed(EngineFailure::new("config_invalid", error.to_string())),
        };

        // 1. extracting
        let start = Instant::now();
        let _ = sink.phase_started("extracting", None).await;
        let mut sheets = Vec::with_capacity(context.inputs.len());
        for (file_index, input) in context.inputs.iter().enumerate() {
            if context.cancel.is_cancelled() {
                return cancelled();
            }
            let sheet_names = context.options.input_sheet_names.as_deref();
            let input_sheets = match read_input(&input.path, &input.filename, sheet_names).await {
                Ok(sheets) => sheets,
                Err(failure) => {
                    let _ = sink.phase_completed("extracting", PhaseStatus::Failed, elapsed_ms(start), None).await;
                    return EngineOutcome::failed(failure);
                }
            };
            let file_index = u32::try_from(file_index).unwrap_or(u32::MAX);
            let is_workbook = Path::new(&input.filename)
                .extension()
                .and_then(|ext| ext.to_str())
                .and_then(WorkbookFormat::from_extension)
                .is_some();
            for (sheet_index, source_sheet, rows) in input_sheets {
                let label = if is_workbook {
                    format!("{} sheet '{source_sheet}'", input.filename)
                } else {
                    input.filename.clone()
                };
                let regions = find_tables(&rows, &fields);
                let mut tables = Vec::with_capacity(regions.len());
                for (table_index, region) in regions.into_iter().enumerate() {
                    let table_index = u32::try_from(table_index).unwrap_or(u32::MAX);
                    let row_count = to_u64(data_rows(&rows, &region).count());
                    tables.push(Table {
                        region,
                        table_index,
                        table_id: format!("tbl_{file_index}_{sheet_index}_{table_index}"),
                        headers: Vec::new(),
                        mapping: TableMapping::default(),
                        row_count,
                        validation: ValidationAggregate::default(),
                    });
                }
                let (level, message) = if tables.is_empty() {
                    (ConsoleLevel::Warn, format!("{label}: no table found (no header row names the configured fields)"))
                } else {
                    let details: Vec<String> = tables
                        .iter()
                        .map(|t| {
                            format!("header on row {}, {}", t.region.header_row + 1, plural(t.row_count, "row", "rows"))
                        })
                        .collect();
                    let count = plural(to_u64(tables.len()), "table", "tables");
                    (ConsoleLevel::Info, format!("{label}: {count} ({})", details.join("; ")))
                };
                let _ = sink.console(level, ConsoleStream::Stdout, message).await;
                sheets.push(Sheet {
                    file_index,
                    sheet_index,
                    label,
                    source_file: input.filename.clone(),
                    source_sheet,
                    rows,
                    tables,
                });
            }
        }
        let table_count = to_u64(sheets.iter().map(|s| s.tables.len()).sum());
        let row_count: u64 = sheets.iter().flat_map(|s| &s.tables).map(|t| t.row_count).sum();
        let extracted = metrics(&[
            ("files", to_u64(context.inputs.len())),
            ("sheets", to_u64(sheets.len())),
            ("tables", table_count),
            ("rows", row_count),
        ]);
        let _ = sink.phase_completed("extracting", PhaseStatus::Succeeded, elapsed_ms(start), extracted).await;

        // 2. mapping
        let start = Instant::now();
        let _ = sink.phase_started("mapping", None).await;
        let (mut mapped_total, mut unmapped_total) = (0u64, 0u64);
        for sheet in &mut sheets {
            let rows = &sheet.rows;
            for table in &mut sheet.tables {
                let region = table.region;
                let columns = region.first_column..=region.last_column;
                let header_row = rows.get(region.header_row).map(Vec::as_slice).unwrap_or_default();
                table.headers = columns
                    .clone()
                    .map(|c| header_row.get(c).map(|cell| cell.display().trim().to_owned()).unwrap_or_default())
                    .collect();
                let mut samples: Vec<Vec<&Cell>> = vec![Vec::new(); table.headers.len()];
                for (_, row) in data_rows(rows, &region).take(SAMPLE_ROWS) {
                    for (slot, column) in samples.iter_mut().zip(columns.clone()) {
                        if let Some(cell) = row.get(column).filter(|cell| !cell.is_blank()) {
                            slot.push(cell);
                        }
                    }
                }
                let mut mapping = map_columns(&table.headers, &samples, &fields);
                let offset = i64::try_from(region.first_column).unwrap_or(i64::MAX);
                for column in &mut mapping.mapped_columns {
                    if column.source_column_index >= 0 {
                        column.source_column_index += offset;
                    }
                }
                for column in &mut mapping.unmapped_columns {
                    column.source_column_index += offset;
                }
                let mapped = mapping.mapped_columns.iter().filter(|c| c.is_satisfied).count();
                let unmapped: Vec<&str> = mapping.unmapped_columns.iter().map(|c| c.header.as_str()).collect();
                let mut message = format!(
                    "{} table {}: {mapped} of {} fields mapped",
                    sheet.label,
                    table.table_index + 1,
                    fields.len()
                );
                if !unmapped.is_empty() {
                    message.push_str(&format!(
                        ", {} ({})",
                        plural(to_u64(unmapped.len()), "unmapped column", "unmapped columns"),
                        unmapped.join(", ")
                    ));
                }
                let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, message).await;
                for missing in mapping.mapped_columns.iter().filter(|c| c.is_required && !c.is_satisfied) {
                    let message = format!(
                        "{} table {}: no column for the required field '{}'",
                        sheet.label,
                        table.table_index + 1,
                        missing.field
                    );
                    let _ = sink.console(ConsoleLevel::Warn, ConsoleStream::Stdout, message).await;
                }
                mapped_total += to_u64(mapped);
                unmapped_total += to_u64(unmapped.len());
                table.mapping = mapping;
            }
        }
        let mapped_metrics =
            metrics(&[("tables", table_count), ("mapped_fields", mapped_total), ("unmapped_columns", unmapped_total)]);
        let _ = sink.phase_completed("mapping", PhaseStatus::Succeeded, elapsed_ms(start), mapped_metrics).await;

        // 3. validating
        let start = Instant::now();
        let _ = sink.phase_started("validating", None).await;
        let mut issues: Vec<IssueRecord> = Vec::new();
        let mut run_validation = ValidationAggregate::default();
        let mut seen_rows = 0usize;
        for sheet in &mut sheets {
            let rows = &sheet.rows;
            for table in &mut sheet.tables {
                let region = table.region;
                for (index, row) in data_rows(rows, &region) {
                    seen_rows += 1;
                    if seen_rows.is_multiple_of(CANCEL_CHECK_ROWS) && context.cancel.is_cancelled() {
                        return cancelled();
                    }
                    for column in table.mapping.mapped_columns.iter().filter(|c| c.is_satisfied) {
                        let Ok(source) = usize::try_from(column.source_column_index) else { continue };
                        let Some(field) = fields.iter().find(|f| f.name() == column.field) else { continue };
                        let cell = row.get(source).unwrap_or(&Cell::Empty);
                        let Some((severity, code, message)) = validate(cell, field) else { continue };
                        table.validation.record(severity, code, Some(field.name()));
                        let issue = ValidationIssue {
                            table_id: table.table_id.clone(),
                            severity,
                            code: code.to_owned(),
                            field: Some(field.name().to_owned()),
                            row: Some(to_u64(index + 1)),
                            column: Some(column.header.clone()),
                            value: (!cell.is_blank()).then(|| cell.issue_value()),
                            message,
                            extra: Extra::new(),
                        };
                        let _ = sink.issue(issue.clone()).await;
                        issues.push(IssueRecord {
                            table_id: table.table_id.clone(),
                            source_file: sheet.source_file.clone(),
                            source_sheet: sheet.source_sheet.clone(),
                            issue,
                        });
                    }
                }
                run_validation.merge(&table.validation);
                let mapped_field_count = to_u64(table.mapping.mapped_columns.iter().filter(|c| c.is_satisfied).count());
                let summary = TableSummary {
                    table_id: table.table_id.clone(),
                    source_file: sheet.source_file.clone(),
                    source_sheet: sheet.source_sheet.clone(),
                    file_index: sheet.file_index,
                    sheet_index: sheet.sheet_index,
                    table_index: table.table_index,
                    row_count: table.row_count,
                    column_count: to_u64(region.column_count()),
                    mapping: table.mapping.clone(),
                    mapped_field_count,
                    unmapped_column_count: to_u64(table.mapping.unmapped_columns.len()),
                    validation: table.validation.clone(),
                    metadata: TableMetadata {
                        header_row: to_u64(region.header_row + 1),
                        first_data_row: to_u64(region.first_data_row + 1),
                        last_data_row: to_u64(region.last_data_row + 1),
                        extra: Extra::new(),
                    },
                    extra: Extra::new(),
                };
                let _ = sink.table_summary(summary).await;
            }
        }
        let validated = metrics(&[("rows", row_count), ("issues", run_validation.issues_total)]);
        let _ = sink.phase_completed("validating", PhaseStatus::Succeeded, elapsed_ms(start), validated).await;

        // 4. writing_output
        let start = Instant::now();
        let _ = sink.phase_started("writing_output", None).await;
        let mut output_paths = Vec::new();
        if context.mode == RunMode::Execute {
            let xlsx = spec.output_format == OutputFormat::Xlsx;
            let written = write_outputs(&context.output_dir, &sheets, &fields, &issues, xlsx).await;
            match written {
                Ok(paths) => {
                    let files = to_u64(paths.len());
                    let message = format!(
                        "wrote {} ({}, {})",
                        paths.join(" and "),
                        plural(row_count, "row", "rows"),
                        plural(to_u64(issues.len()), "issue", "issues")
                    );
                    output_paths = paths;
                    let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, message).await;
                    let wrote = metrics(&[("files", files), ("rows", row_count), ("issues", to_u64(issues.len()))]);
                    let _ =
                        sink.phase_completed("writing_output", PhaseStatus::Succeeded, elapsed_ms(start), wrote).await;
                }
                Err(message) => {
                    let _ = sink.phase_completed("writing_output", PhaseStatus::Failed, elapsed_ms(start), None).await;
                    return EngineOutcome::failed(EngineFailure::new("engine_error", message));
                }
            }
        } else {
            let _ = sink.phase_completed("writing_output", PhaseStatus::Skipped, elapsed_ms(start), None).await;
        }

        let _ = sink.validation_summary(run_validation).await;
        EngineOutcome::succeeded(output_paths)
    }
}

/// The columns of `issues.csv` and of the `issues` sheet.
const ISSUE_COLUMNS: [&str; 10] =
    ["table_id", "source_file", "source_sheet", "row", "field", "column", "severity", "code", "value", "message"];

/// Writes the outputs into `output_dir`: `normalized.xlsx` (sheets `normalized` and `issues`)
/// when `xlsx`, else `normalized.csv` and `issues.csv`. Returns their paths relative to the run's
/// directory.
async fn write_outputs(
    output_dir: &Path,
    sheets: &[Sheet],
    fields: &CompiledFields,
    issues: &[IssueRecord],
    xlsx: bool,
) -> Result<Vec<String>, String> {
    let (header, records) = normalized_records(sheets, fields);
    let issue_header = ISSUE_COLUMNS.map(str::to_owned).to_vec();
    let issue_records = issue_records(issues);
    let files: Vec<(&str, Vec<u8>)> = if xlsx {
        let bytes = tokio::task::spawn_blocking(move || {
            workbook_bytes(&[("normalized", &header, &records), ("issues", &issue_header, &issue_records)])
        })
        .await
        .map_err(|error| format!("normalized.xlsx: {error}"))?
        .map_err(|error| format!("normalized.xlsx: {error}"))?;
        vec![("normalized.xlsx", bytes)]
    } else {
        let normalized = csv_bytes(&header, &records).map_err(|error| format!("normalized.csv: {error}"))?;
        let issues = csv_bytes(&issue_header, &issue_records).map_err(|error| format!("issues.csv: {error}"))?;
        vec![("normalized.csv", normalized), ("issues.csv", issues)]
    };
    tokio::fs::create_dir_all(output_dir).await.map_err(|error| format!("{}: {error}", output_dir.display()))?;
    let mut paths = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let path = output_dir.join(name);
        tokio::fs::write(&path, bytes).await.map_err(|error| format!("{}: {error}", path.display()))?;
        paths.push(format!("outputs/{name}"));
    }
    Ok(paths)
}

/// The normalized output: configured fields in order, then `raw_1…raw_n` for unmapped columns,
/// then `source_file`, `source_sheet`, `source_row`; one record per data row.
fn normalized_records(sheets: &[Sheet], fields: &CompiledFields) -> (Vec<String>, Vec<Vec<Cell>>) {
    let raw_count = sheets.iter().flat_map(|s| &s.tables).map(|t| t.mapping.unmapped_columns.len()).max().unwrap_or(0);
    let mut header: Vec<String> = fields.iter().map(|f| f.name().to_owned()).collect();
    header.extend((1..=raw_count).map(|n| format!("raw_{n}")));
    header.extend(["source_file", "source_sheet", "source_row"].map(str::to_owned));
    let mut records = Vec::new();
    for sheet in sheets {
        for table in &sheet.tables {
            let field_columns: Vec<Option<usize>> = fields
                .iter()
                .map(|field| {
                    table
                        .mapping
                        .mapped_columns
                        .iter()
                        .find(|c| c.is_satisfied && c.field == field.name())
                        .and_then(|c| usize::try_from(c.source_column_index).ok())
                })
                .collect();
            let raw_columns: Vec<Option<usize>> = (0..raw_count)
                .map(|n| {
                    table.mapping.unmapped_columns.get(n).and_then(|c| usize::try_from(c.source_column_index).ok())
                })
                .collect();
            for (index, row) in data_rows(&sheet.rows, &table.region) {
                let value = |column: &Option<usize>| column.and_then(|c| row.get(c)).cloned().unwrap_or(Cell::Empty);
                let mut record: Vec<Cell> = field_columns.iter().map(value).collect();
                record.extend(raw_columns.iter().map(value));
                record.extend([
                    Cell::Text(sheet.source_file.clone()),
                    Cell::Text(sheet.source_sheet.clone()),
                    Cell::Int(i64::try_from(index + 1).unwrap_or(i64::MAX)),
                ]);
                records.push(record);
            }
        }
    }
    (header, records)
}

/// Every issue, as records under [`ISSUE_COLUMNS`].
fn issue_records(issues: &[IssueRecord]) -> Vec<Vec<Cell>> {
    let text = |value: &str| if value.is_empty() { Cell::Empty } else { Cell::Text(value.to_owned()) };
    issues
        .iter()
        .map(|record| {
            let issue = &record.issue;
            vec![
                text(&record.table_id),
                text(&record.source_file),
                text(&record.source_sheet),
                issue.row.map_or(Cell::Empty, |r| Cell::Int(i64::try_from(r).unwrap_or(i64::MAX))),
                text(issue.field.as_deref().unwrap_or_default()),
                text(issue.column.as_deref().unwrap_or_default()),
                text(severity_text(issue.severity)),
                text(&issue.code),
                text(issue.value.as_deref().unwrap_or_default()),
                text(&issue.message),
            ]
        })
        .collect()
}

/// A CSV file: `header`, then each record's cells as a person sees them.
fn csv_bytes(header: &[String], records: &[Vec<Cell>]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new().flexible(false).from_writer(Vec::new());
    writer.write_record(header)?;
    for record in records {
        writer.write_record(record.iter().map(Cell::display))?;
    }
    writer.into_inner().map_err(|error| csv::Error::from(error.into_error()))
}

/// One sheet of an output workbook: its name, header and records.
type OutputSheet<'a> = (&'a str, &'a [String], &'a [Vec<Cell>]);

/// An XLSX workbook with one sheet per `(name, header, records)`: a bold header row, then the
/// records with their types kept (numbers, booleans, dates; text otherwise).
fn workbook_bytes(sheets: &[OutputSheet<'_>]) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    for (name, header, records) in sheets {
        let worksheet = workbook.add_worksheet();
        worksheet.set_name(*name)?;
        for (column, title) in header.iter().enumerate() {
            worksheet.write_string_with_format(0, column_number(column)?, title, &bold)?;
        }
        for (index, record) in records.iter().enumerate() {
            let row = u32::try_from(index + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
            for (column, cell) in record.iter().enumerate() {
                let column = column_number(column)?;
                match cell {
                    Cell::Empty => {}
                    // Beyond 2^53 a float loses digits: keep such integers as text.
                    Cell::Int(n) if n.unsigned_abs() < (1 << 53) => {
                        worksheet.write_number(row, column, *n as f64)?;
                    }
                    Cell::Float(f) if f.is_finite() => {
                        worksheet.write_number(row, column, *f)?;
                    }
                    Cell::Bool(b) => {
                        worksheet.write_boolean(row, column, *b)?;
                    }
                    Cell::Date(d) => {
                        let value = excel_datetime(d.and_time(chrono::NaiveTime::MIN))?;
                        worksheet.write_datetime_with_format(row, column, value, &date)?;
                    }
                    Cell::DateTime(dt) => {
                        worksheet.write_datetime_with_format(row, column, excel_datetime(*dt)?, &datetime)?;
                    }
                    other => {
                        worksheet.write_string(row, column, other.display())?;
                    }
                }
            }
        }
        worksheet.set_freeze_panes(1, 0)?;
    }
    workbook.save_to_buffer()
}

fn column_number(column: usize) -> Result<u16, XlsxError> {
    u16::try_from(column).map_err(|_| XlsxError::RowColumnLimitError)
}

fn excel_datetime(datetime: chrono::NaiveDateTime) -> Result<ExcelDateTime, XlsxError> {
    use chrono::{Datelike, Timelike};
    let year = u16::try_from(datetime.year()).map_err(|_| XlsxError::DateTimeRangeError(datetime.to_string()))?;
    let month = u8::try_from(datetime.month()).unwrap_or(1);
    let day = u8::try_from(datetime.day()).unwrap_or(1);
    let hour = u16::try_from(datetime.hour()).unwrap_or(0);
    let minute = u8::try_from(datetime.minute()).unwrap_or(0);
    let seconds = f64::from(datetime.second()) + f64::from(datetime.nanosecond()) / 1e9;
    ExcelDateTime::from_ymd(year, month, day)?.and_hms(hour, minute, seconds)
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::event::{DocumentId, Envelope, EventPayload, WorkspaceId};
    use crate::orchestrate::{CreateRun, Runtime};
    use crate::run::{RunOptions, RunOutcome, Stage};
    use crate::testing::{completion, id, run_to_end, types};

    const MEMBERS_CSV: &str = "Members 2024\n\
        \n\
        Member #,Full name,E-mail,Notes,Joined\n\
        1,Ada Lovelace,ada@example.org,first,2024-01-02\n\
        2,Grace Hopper,grace-at-example.org,,2024-02-03\n\
        ,Linus,linus@example.org,x,2024-03-04\n\
        4,\"Hopper, Jr.\",bad@,,2024-04-05\n\
        5,Alan Turing,alan@example.org,y,2024-05-06\n";

    fn configuration(id: &str, output_format: &str, email_pattern: Option<&str>) -> Configuration {
        let mut email = json!({ "name": "email", "type": "email", "synonyms": ["e-mail address"] });
        if let (Some(pattern), Some(object)) = (email_pattern, email.as_object_mut()) {
            object.insert("pattern".to_owned(), json!(pattern));
        }
        serde_json::from_value(json!({
            "id": id,
            "version": "1",
            "engine": "extract",
            "output_format": output_format,
            "fields": [
                { "name": "member_id", "type": "integer", "required": true, "synonyms": ["member"] },
                { "name": "name", "label": "Full name" },
                email,
                { "name": "joined", "type": "date" },
            ],
        }))
        .expect("valid configuration")
    }

    struct Harness {
        runtime: Runtime,
        _dir: tempfile::TempDir,
    }

    async fn harness() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = Runtime::builder()
            .data_dir(dir.path())
            .workers(1)
            .configuration(configuration("members", "csv", None))
            .configuration(configuration("members-xlsx", "xlsx", None))
            .configuration(configuration("bad-pattern", "csv", Some("[unclosed")))
            .build()
            .await
            .expect("runtime");
        Harness { runtime, _dir: dir }
    }

    async fn upload(runtime: &Runtime, filename: &str, bytes: &[u8]) -> DocumentId {
        runtime.upload_document(&WorkspaceId::default(), filename, None, bytes, u64::MAX).await.expect("upload").id
    }

    fn consoles(events: &[Envelope]) -> Vec<(ConsoleLevel, String)> {
        events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::ConsoleLine(line) => Some((line.level, line.message.clone())),
                _ => None,
            })
            .collect()
    }

    fn run_phases(events: &[Envelope]) -> Vec<(String, PhaseStatus)> {
        events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::RunPhaseCompleted(p) => Some((p.phase.clone(), p.status)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_realistic_csv_end_to_end() {
        let h = harness().await;
        let document = upload(&h.runtime, "members.csv", MEMBERS_CSV.as_bytes()).await;
        let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("members")).document(document)).await;
        let mut want = vec!["run.queued", "build.created", "build.started"];
        for _ in 0..3 {
            want.extend(["build.phase.started", "build.phase.completed"]);
        }
        want.extend(["build.completed", "run.started"]);
        want.extend(["run.phase.started", "console.line", "run.phase.completed"]); // extracting
        want.extend(["run.phase.started", "console.line", "run.phase.completed"]); // mapping
        want.extend(["run.phase.started"]); // validating
        want.extend(["run.validation.issue"; 3]);
        want.extend(["run.table.summary", "run.phase.completed"]);
        want.extend(["run.phase.started", "console.line", "run.phase.completed"]); // writing_output
        want.extend(["run.validation.summary", "run.completed"]);
        assert_eq!(types(&events), want);
        let done = completion(&events);
        assert_eq!(done.status, RunOutcome::Succeeded, "{:?}", done.failure);
        assert_eq!(done.artifacts.output_paths, vec!["outputs/normalized.csv", "outputs/issues.csv"]);

        let build_phases: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::BuildPhaseStarted(p) => Some(p.phase.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(build_phases, ["load_config", "validate_config", "compile_rules"]);
        let phases: Vec<String> = run_phases(&events).into_iter().map(|(phase, _)| phase).collect();
        assert_eq!(phases, ["extracting", "mapping", "validating", "writing_output"]);
        for event in &events {
            if let EventPayload::RunPhaseCompleted(p) = &event.payload {
                assert_eq!(p.status, PhaseStatus::Succeeded);
                assert!(p.metrics.is_some(), "{} has metrics", p.phase);
            }
        }
        let validating = events.iter().find_map(|e| match &e.payload {
            EventPayload::RunPhaseCompleted(p) if p.phase == "validating" => p.metrics.clone(),
            _ => None,
        });
        let validating = validating.expect("metrics");
        assert_eq!(validating.get("rows").and_then(serde_json::Number::as_u64), Some(5));
        assert_eq!(validating.get("issues").and_then(serde_json::Number::as_u64), Some(3));
        let lines = consoles(&events);
        assert_eq!(lines[0], (ConsoleLevel::Info, "members.csv: 1 table (header on row 3, 5 rows)".to_owned()));
        assert_eq!(
            lines[1],
            (ConsoleLevel::Info, "members.csv table 1: 4 of 4 fields mapped, 1 unmapped column (Notes)".to_owned())
        );

        let issues: Vec<&ValidationIssue> = events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::RunValidationIssue(issue) => Some(issue),
                _ => None,
            })
            .collect();
        let seen: Vec<_> = issues
            .iter()
            .map(|i| (i.row, i.code.as_str(), i.field.as_deref(), i.column.as_deref(), i.value.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (Some(5), "invalid_email", Some("email"), Some("E-mail"), Some("grace-at-example.org")),
                (Some(6), "missing_required_value", Some("member_id"), Some("Member #"), None),
                (Some(7), "invalid_email", Some("email"), Some("E-mail"), Some("bad@")),
            ]
        );
        assert!(issues.iter().all(|i| i.table_id == "tbl_0_0_0"));
        assert_eq!(issues[1].severity, Severity::Error);
        assert_eq!(issues[0].severity, Severity::Warning);

        let table = events
            .iter()
            .find_map(|e| match &e.payload {
                EventPayload::RunTableSummary(table) => Some(table),
                _ => None,
            })
            .expect("a table summary");
        assert_eq!(table.table_id, "tbl_0_0_0");
        assert_eq!((table.source_file.as_str(), table.source_sheet.as_str()), ("members.csv", "members"));
        assert_eq!((table.file_index, table.sheet_index, table.table_index), (0, 0, 0));
        assert_eq!((table.row_count, table.column_count), (5, 5));
        assert_eq!((table.mapped_field_count, table.unmapped_column_count), (4, 1));
        assert_eq!((table.metadata.header_row, table.metadata.first_data_row, table.metadata.last_data_row), (3, 4, 8));
        let mapped: Vec<(&str, &str, i64, bool, bool)> = table
            .mapping
            .mapped_columns
            .iter()
            .map(|c| (c.field.as_str(), c.header.as_str(), c.source_column_index, c.is_required, c.is_satisfied))
            .collect();
        assert_eq!(
            mapped,
            vec![
                ("member_id", "Member #", 0, true, true),
                ("name", "Full name", 1, false, true),
                ("email", "E-mail", 2, false, true),
                ("joined", "Joined", 4, false, true),
            ]
        );
        let unmapped = &table.mapping.unmapped_columns;
        assert_eq!(unmapped.len(), 1);
        assert_eq!((unmapped[0].header.as_str(), unmapped[0].source_column_index), ("Notes", 3));
        assert_eq!(unmapped[0].output_header, "raw_1");
        let v = &table.validation;
        assert_eq!(v.issues_total, 3);
        assert_eq!(v.issues_by_code.get("invalid_email"), Some(&2));
        assert_eq!(v.issues_by_code.get("missing_required_value"), Some(&1));
        assert_eq!(v.issues_by_severity.get(&Severity::Warning), Some(&2));
        assert_eq!(v.issues_by_field.get("email").map(|f| f.issues_total), Some(2));
        assert_eq!(v.issues_by_field.get("member_id").map(|f| f.issues_total), Some(1));
        assert_eq!(v.max_severity, Some(Severity::Error));
        assert!(v.is_consistent());
        let summary = events.iter().find_map(|e| match &e.payload {
            EventPayload::RunValidationSummary(summary) => Some(summary),
            _ => None,
        });
        assert_eq!(summary, Some(v), "one table: the run's summary is the table's");

        let outputs = h.runtime.run_dir(&run.workspace_id, run.id).join("outputs");
        let normalized = std::fs::read_to_string(outputs.join("normalized.csv")).expect("normalized.csv");
        let mut reader = csv::Reader::from_reader(normalized.as_bytes());
        let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_owned).collect();
        assert_eq!(
            header,
            ["member_id", "name", "email", "joined", "raw_1", "source_file", "source_sheet", "source_row"]
        );
        let records: Vec<Vec<String>> =
            reader.records().map(|r| r.expect("record").iter().map(str::to_owned).collect()).collect();
        let want = [
            ["1", "Ada Lovelace", "ada@example.org", "2024-01-02", "first", "members.csv", "members", "4"],
            ["2", "Grace Hopper", "grace-at-example.org", "2024-02-03", "", "members.csv", "members", "5"],
            ["", "Linus", "linus@example.org", "2024-03-04", "x", "members.csv", "members", "6"],
            ["4", "Hopper, Jr.", "bad@", "2024-04-05", "", "members.csv", "members", "7"],
            ["5", "Alan Turing", "alan@example.org", "2024-05-06", "y", "members.csv", "members", "8"],
        ];
        assert_eq!(records, want.map(|r| r.map(str::to_owned).to_vec()).to_vec());
        let issues_csv = std::fs::read_to_string(outputs.join("issues.csv")).expect("issues.csv");
        let mut reader = csv::Reader::from_reader(issues_csv.as_bytes());
        let rows: Vec<(String, String)> = reader
            .records()
            .map(|r| r.expect("record"))
            .map(|r| (r.get(3).unwrap_or_default().to_owned(), r.get(7).unwrap_or_default().to_owned()))
            .collect();
        assert_eq!(
            rows,
            [("5", "invalid_email"), ("6", "missing_required_value"), ("7", "invalid_email")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        h.runtime.shutdown().await;
    }

    #[tokio::test]
    async fn an_invalid_configuration_fails_the_build() {
        let h = harness().await;
        let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("bad-pattern"))).await;
        let build = events.iter().find_map(|e| match &e.payload {
            EventPayload::BuildCompleted(b) => Some(b),
            _ => None,
        });
        let build = build.expect("build.completed");
        assert_eq!(build.status, crate::event::BuildStatus::Failed);
        let error = build.error.as_ref().expect("an error");
        assert_eq!(error.code, "config_invalid");
        assert!(error.message.contains("'email'"), "{}", error.message);
        let failed_phase = events.iter().find_map(|e| match &e.payload {
            EventPayload::BuildPhaseCompleted(p) if p.status == PhaseStatus::Failed => Some(p.phase.as_str()),
            _ => None,
        });
        assert_eq!(failed_phase, Some("validate_config"));
        assert!(!types(&events).contains(&"run.started"));
        let done = completion(&events);
        assert_eq!(done.status, RunOutcome::Failed);
        assert_eq!(done.failure.as_ref().map(|f| f.stage), Some(Stage::Build));
        assert_eq!(run.failure.as_ref().map(|f| f.stage), Some(Stage::Build));
        h.runtime.shutdown().await;
    }

    #[tokio::test]
    async fn bad_inputs_fail_with_input_error() {
        let h = harness().await;
        let cases: [(&str, &[u8], &str); 3] = [
            ("empty.csv", b"", "empty.csv is empty"),
            (
                "members.txt",
                b"Member #,E-mail\n1,a@b.co\n",
                "members.txt is not a supported input (CSV, XLSX, XLSM, XLS or ODS)",
            ),
            ("binary.CSV", b"Member #,E-mail\n1,\xff\xfe\n", "binary.CSV: row 2 is not valid UTF-8"),
        ];
        for (filename, bytes, message) in cases {
            let document = upload(&h.runtime, filename, bytes).await;
            let (_, events) = run_to_end(&h.runtime, CreateRun::new(id("members")).document(document)).await;
            let errors: Vec<(&str, &str)> = events
                .iter()
                .filter_map(|e| match &e.payload {
                    EventPayload::RunError(error) => Some((error.code.as_str(), error.message.as_str())),
                    _ => None,
                })
                .collect();
            assert_eq!(errors, vec![("input_error", message)], "{filename}");
            let done = completion(&events);
            assert_eq!(done.status, RunOutcome::Failed, "{filename}");
            assert_eq!(done.failure.as_ref().map(|f| (f.stage, f.code.as_str())), Some((Stage::Run, "input_error")));
            assert_eq!(run_phases(&events), vec![("extracting".to_owned(), PhaseStatus::Failed)]);
        }

        let document = upload(&h.runtime, "report.csv", b"Region,Revenue\nNorth,10\n").await;
        let (_, events) = run_to_end(&h.runtime, CreateRun::new(id("members")).document(document)).await;
        assert_eq!(completion(&events).status, RunOutcome::Succeeded);
        assert!(!types(&events).contains(&"run.table.summary"));
        assert!(!types(&events).contains(&"run.error"));
        let warning = consoles(&events).into_iter().find(|(level, _)| *level == ConsoleLevel::Warn);
        assert_eq!(
            warning.map(|(_, message)| message),
            Some("report.csv: no table found (no header row names the configured fields)".to_owned())
        );
        h.runtime.shutdown().await;
    }

    #[tokio::test]
    async fn validate_only_writes_nothing_and_xlsx_is_the_default_output() {
        let h = harness().await;
        let document = upload(&h.runtime, "members.csv", MEMBERS_CSV.as_bytes()).await;
        let request = CreateRun::new(id("members")).document(document).mode(RunMode::ValidateOnly);
        let (run, events) = run_to_end(&h.runtime, request).await;
        let done = completion(&events);
        assert_eq!(done.status, RunOutcome::Succeeded);
        assert!(done.artifacts.output_paths.is_empty());
        assert_eq!(run_phases(&events).last(), Some(&("writing_output".to_owned(), PhaseStatus::Skipped)));
        assert_eq!(types(&events).iter().filter(|t| **t == "run.validation.issue").count(), 3);
        let outputs = h.runtime.run_dir(&run.workspace_id, run.id).join("outputs");
        assert!(!outputs.join("normalized.csv").exists() && !outputs.join("issues.csv").exists());

        let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("members-xlsx")).document(document)).await;
        let done = completion(&events);
        assert_eq!(done.status, RunOutcome::Succeeded);
        assert_eq!(done.artifacts.output_paths, vec!["outputs/normalized.xlsx"]);
        assert!(!consoles(&events).iter().any(|(level, _)| *level == ConsoleLevel::Warn));
        let outputs = h.runtime.run_dir(&run.workspace_id, run.id).join("outputs");
        assert!(outputs.join("normalized.xlsx").is_file() && !outputs.join("normalized.csv").exists());
        h.runtime.shutdown().await;
    }

    /// A cell written into a test workbook.
    enum W<'a> {
        S(&'a str),
        N(f64),
        D(u16, u8, u8),
    }

    /// A sheet of a test workbook: its name, top-left `(row, column)` and rows.
    type TestSheet<'a> = (&'a str, (u32, u16), Vec<Vec<W<'a>>>);

    /// An XLSX workbook with `sheets`, each `(name, top-left (row, column), rows)`.
    fn xlsx(sheets: &[TestSheet<'_>]) -> Vec<u8> {
        let mut workbook = Workbook::new();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        for (name, (top, left), rows) in sheets {
            let worksheet = workbook.add_worksheet();
            worksheet.set_name(*name).expect("name");
            for (r, row) in rows.iter().enumerate() {
                let r = top + u32::try_from(r).expect("row");
                for (c, cell) in row.iter().enumerate() {
                    let c = left + u16::try_from(c).expect("column");
                    match cell {
                        W::S("") => {}
                        W::S(text) => {
                            worksheet.write_string(r, c, *text).expect("write");
                        }
                        W::N(n) => {
                            worksheet.write_number(r, c, *n).expect("write");
                        }
                        W::D(y, m, d) => {
                            let value = ExcelDateTime::from_ymd(*y, *m, *d).expect("date");
                            worksheet.write_datetime_with_format(r, c, value, &date).expect("write");
                        }
                    }
                }
            }
        }
        workbook.save_to_buffer().expect("workbook")
    }

    /// Two sheets: `Members` (title, blank row, a junk `Notes` column, header on row 3) and
    /// `Staff` (header on row 1).
    fn book() -> Vec<u8> {
        use W::{D, N, S};
        let members = vec![
            vec![S("Members 2024")],
            vec![],
            vec![S("Member #"), S("Full name"), S("E-mail"), S("Notes"), S("Joined")],
            vec![N(1.0), S("Ada Lovelace"), S("ada@example.org"), S("first"), D(2024, 1, 2)],
            vec![N(2.0), S("Grace Hopper"), S("grace-at-example.org"), S(""), D(2024, 2, 3)],
            vec![S(""), S("Linus"), S("linus@example.org"), S("x"), D(2024, 3, 4)],
            vec![N(4.0), S("Hopper, Jr."), S("bad@"), S(""), D(2024, 4, 5)],
            vec![N(5.0), S("Alan Turing"), S("alan@example.org"), S("y"), D(2024, 5, 6)],
        ];
        let staff = vec![
            vec![S("Member #"), S("Full name"), S("E-mail")],
            vec![N(10.0), S("Kay"), S("kay@example.org")],
            vec![N(11.0), S("Bob"), S("bob@")],
        ];
        xlsx(&[("Members", (0, 0), members), ("Staff", (0, 0), staff)])
    }

    fn summaries(events: &[Envelope]) -> Vec<&TableSummary> {
        events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::RunTableSummary(table) => Some(table),
                _ => None,
            })
            .collect()
    }

    fn issue_rows(events: &[Envelope]) -> Vec<(String, Option<u64>, String)> {
        events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::RunValidationIssue(i) => Some((i.table_id.clone(), i.row, i.code.clone())),
                _ => None,
            })
            .collect()
    }

    /// The sheets of an XLSX file, each cell as a person sees it.
    fn read_back(path: &Path) -> Vec<(String, Vec<Vec<String>>)> {
        let bytes = std::fs::read(path).expect("output");
        read_workbook(bytes, WorkbookFormat::Xlsx, None)
            .expect("readable")
            .into_iter()
            .map(|sheet| (sheet.name, sheet.rows.iter().map(|r| r.iter().map(Cell::display).collect()).collect()))
            .collect()
    }

    fn strings<const N: usize>(rows: &[[&str; N]]) -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().map(|c| (*c).to_owned()).collect()).collect()
    }

    #[tokio::test]
    async fn a_workbook_end_to_end_with_xlsx_output() {
        let h = harness().await;
        let document = upload(&h.runtime, "book.xlsx", &book()).await;
        let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("members-xlsx")).document(document)).await;
        let done = completion(&events);
        assert_eq!(done.status, RunOutcome::Succeeded, "{:?}", done.failure);
        assert_eq!(done.artifacts.output_paths, vec!["outputs/normalized.xlsx"]);
        let lines = consoles(&events);
        assert_eq!(lines[0].1, "book.xlsx sheet 'Members': 1 table (header on row 3, 5 rows)");
        assert_eq!(lines[1].1, "book.xlsx sheet 'Staff': 1 table (header on row 1, 2 rows)");

        let tables = summaries(&events);
        let seen: Vec<_> = tables
            .iter()
            .map(|t| {
                (
                    t.table_id.as_str(),
                    t.source_file.as_str(),
                    t.source_sheet.as_str(),
                    (t.file_index, t.sheet_index, t.table_index),
                    (t.row_count, t.column_count, t.mapped_field_count, t.unmapped_column_count),
                    (t.metadata.header_row, t.metadata.first_data_row, t.metadata.last_data_row),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("tbl_0_0_0", "book.xlsx", "Members", (0, 0, 0), (5, 5, 4, 1), (3, 4, 8)),
                ("tbl_0_1_0", "book.xlsx", "Staff", (0, 1, 0), (2, 3, 3, 0), (1, 2, 3)),
            ]
        );
        let mapped: Vec<(&str, i64)> =
            tables[0].mapping.mapped_columns.iter().map(|c| (c.field.as_str(), c.source_column_index)).collect();
        assert_eq!(mapped, vec![("member_id", 0), ("name", 1), ("email", 2), ("joined", 4)]);
        assert_eq!(tables[0].mapping.unmapped_columns[0].header, "Notes");
        let issues = issue_rows(&events);
        let want = [
            ("tbl_0_0_0", 5, "invalid_email"),
            ("tbl_0_0_0", 6, "missing_required_value"),
            ("tbl_0_0_0", 7, "invalid_email"),
            ("tbl_0_1_0", 3, "invalid_email"),
        ];
        assert_eq!(issues, want.map(|(t, r, c)| (t.to_owned(), Some(r), c.to_owned())).to_vec());

        let outputs = h.runtime.run_dir(&run.workspace_id, run.id).join("outputs");
        let sheets = read_back(&outputs.join("normalized.xlsx"));
        let names: Vec<&str> = sheets.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["normalized", "issues"]);
        let source = "book.xlsx";
        assert_eq!(
            sheets[0].1,
            strings(&[
                ["member_id", "name", "email", "joined", "raw_1", "source_file", "source_sheet", "source_row"],
                ["1", "Ada Lovelace", "ada@example.org", "2024-01-02", "first", source, "Members", "4"],
                ["2", "Grace Hopper", "grace-at-example.org", "2024-02-03", "", source, "Members", "5"],
                ["", "Linus", "linus@example.org", "2024-03-04", "x", source, "Members", "6"],
                ["4", "Hopper, Jr.", "bad@", "2024-04-05", "", source, "Members", "7"],
                ["5", "Alan Turing", "alan@example.org", "2024-05-06", "y", source, "Members", "8"],
                ["10", "Kay", "kay@example.org", "", "", source, "Staff", "2"],
                ["11", "Bob", "bob@", "", "", source, "Staff", "3"],
            ])
        );
        let issues_sheet = &sheets[1].1;
        assert_eq!(issues_sheet[0], ISSUE_COLUMNS.map(str::to_owned).to_vec());
        let rows: Vec<[&str; 5]> = issues_sheet[1..]
            .iter()
            .map(|r| [r[0].as_str(), r[2].as_str(), r[3].as_str(), r[4].as_str(), r[7].as_str()])
            .collect();
        assert_eq!(
            rows,
            vec![
                ["tbl_0_0_0", "Members", "5", "email", "invalid_email"],
                ["tbl_0_0_0", "Members", "6", "member_id", "missing_required_value"],
                ["tbl_0_0_0", "Members", "7", "email", "invalid_email"],
                ["tbl_0_1_0", "Staff", "3", "email", "invalid_email"],
            ]
        );
        assert_eq!(issues_sheet[1][8], "grace-at-example.org");
        h.runtime.shutdown().await;
    }

    #[tokio::test]
    async fn a_table_away_from_a1_keeps_its_spreadsheet_rows_and_columns() {
        use W::{N, S};
        let h = harness().await;
        let rows = vec![
            vec![S("Member #"), S("Full name"), S("E-mail")],
            vec![N(1.0), S("Ada"), S("ada@example.org")],
            vec![S(""), S("Bob"), S("bad@")],
        ];
        // Header at C5.
        let document = upload(&h.runtime, "offset.XLSX", &xlsx(&[("Data", (4, 2), rows)])).await;
        let (run, events) = run_to_end(&h.runtime, CreateRun::new(id("members")).document(document)).await;
        assert_eq!(completion(&events).status, RunOutcome::Succeeded);
        let tables = summaries(&events);
        assert_eq!(tables.len(), 1);
        let m = &tables[0].metadata;
        assert_eq!((m.header_row, m.first_data_row, m.last_data_row), (5, 6, 7));
        let columns: Vec<i64> = tables[0].mapping.mapped_columns.iter().map(|c| c.source_column_index).collect();
        assert_eq!(columns, [2, 3, 4, -1]);
        let issues = issue_rows(&events);
        let want = [(7, "missing_required_value"), (7, "invalid_email")];
        assert_eq!(issues, want.map(|(r, c)| ("tbl_0_0_0".to_owned(), Some(r), c.to_owned())).to_vec());
        let outputs = h.runtime.run_dir(&run.workspace_id, run.id).join("outputs");
        let normalized = std::fs::read_to_string(outputs.join("normalized.csv")).expect("csv output");
        assert_eq!(
            normalized,
            "member_id,name,email,joined,source_file,source_sheet,source_row\n\
             1,Ada,ada@example.org,,offset.XLSX,Data,6\n\
             ,Bob,bad@,,offset.XLSX,Data,7\n"
        );
        h.runtime.shutdown().await;
    }

    #[tokio::test]
    async fn bad_workbooks_fail_with_input_error() {
        let h = harness().await;
        // An empty workbook is an input error, like an empty CSV file.
        let empty = xlsx(&[("Sheet1", (0, 0), Vec::new())]);
        let cases: [(&str, Vec<u8>, &str); 3] = [
            ("garbage.xlsx", b"this is not a zip file".to_vec(), "garbage.xlsx is not a readable XLSX workbook: "),
            ("old.xls", b"nor an OLE file".to_vec(), "old.xls is not a readable XLS workbook: "),
            ("empty.xlsx", empty, "empty.xlsx is empty"),
        ];
        for (filename, bytes, message) in cases {
            let document = upload(&h.runtime, filename, &bytes).await;
            let (_, events) = run_to_end(&h.runtime, CreateRun::new(id("members")).document(document)).await;
            let errors: Vec<(&str, &str)> = events
                .iter()
                .filter_map(|e| match &e.payload {
                    EventPayload::RunError(error) => Some((error.code.as_str(), error.message.as_str())),
                    _ => None,
                })
                .collect();
            assert_eq!(errors.len(), 1, "{filename}");
            assert_eq!(errors[0].0, "input_error");
            assert!(errors[0].1.starts_with(message), "{filename}: {}", errors[0].1);
            let done = completion(&events);
            assert_eq!(done.status, RunOutcome::Failed, "{filename}");
            assert_eq!(run_phases(&events), vec![("extracting".to_owned(), PhaseStatus::Failed)]);
        }
        h.runtime.shutdown().await;
    }

    #[tokio::test]
    async fn input_sheet_names_select_sheets() {
        let h = harness().await;
        let document = upload(&h.runtime, "book.xlsx", &book()).await;
        let only = |names: &[&str]| RunOptions {
            input_sheet_names: Some(names.iter().map(|n| (*n).to_owned()).collect()),
            ..RunOptions::default()
        };
        let request = CreateRun::new(id("members")).document(document).options(only(&["Staff"]));
        let (_, events) = run_to_end(&h.runtime, request).await;
        assert_eq!(completion(&events).status, RunOutcome::Succeeded);
        let tables: Vec<_> =
            summaries(&events).iter().map(|t| (t.table_id.clone(), t.source_sheet.clone(), t.sheet_index)).collect();
        assert_eq!(tables, vec![("tbl_0_1_0".to_owned(), "Staff".to_owned(), 1)]);
        assert_eq!(issue_rows(&events), vec![("tbl_0_1_0".to_owned(), Some(3), "invalid_email".to_owned())]);

        let request = CreateRun::new(id("members")).document(document).options(only(&["Nope"]));
        let (_, events) = run_to_end(&h.runtime, request).await;
        let error = events.iter().find_map(|e| match &e.payload {
            EventPayload::RunError(error) => Some((error.code.as_str(), error.message.as_str())),
            _ => None,
        });
        assert_eq!(error, Some(("input_error", "book.xlsx has no worksheet named 'Nope'")));
        h.runtime.shutdown().await;
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_323), "1,323");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(plural(1, "row", "rows"), "1 row");
        assert_eq!(ExtractEngine::default().version(), env!("CARGO_PKG_VERSION"));
    }
}
