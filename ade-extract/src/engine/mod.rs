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
//!    the file; a sheet without a table is a console warning, and so is a table whose header
//!    row has no data rows (the run goes on; its summary has `row_count: 0`).
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
//! Then `run.validation.summary` for the whole run.
//!
//! Reading and table detection, validation and writing run on blocking threads
//! (`spawn_blocking`), so the runtime's async threads stay free. Cancellation is checked before
//! each input, every 1,000 rows while reading an XLSX sheet (after each XLS or ODS sheet), while
//! validating and while writing (normalized rows and issues alike), and before the output
//! workbook is saved; a CSV file is parsed whole (a million rows take well under a second in a
//! release build). Each phase says what it did in a console line; reading a workbook, validating
//! and writing also send an info line on how far they got (`read 300,000 rows of m.xlsx sheet
//! 'Members'`, `validated 400,000 of 1,000,000 rows`, `wrote 200,000 of 1,000,000 rows`) at most
//! every 2 s, so a small run's console is the same as without them.
//!
//! Large and odd inputs: a sheet may have at most [`MAX_SHEET_CELLS`](super::MAX_SHEET_CELLS)
//! cells (40,000,000: memory stays around 32 bytes per cell plus its text, plus the output
//! writer's copy); a larger one is an `input_error`. XLSX inputs are streamed cell by cell into
//! the grid (no dense intermediate range). Text longer than Excel's 32,767-character cell limit
//! is cut in `normalized.xlsx` and a console warning says how many texts were cut; issue values
//! are cut to 256 characters. Formula error values (`#DIV/0!`, `#N/A`, …) are `invalid_type`
//! issues. Password-protected (encrypted) workbooks are an `input_error` saying so.
//!
//! XLSX output holds at most Excel's 1,048,575 data rows per sheet. More normalized rows fail the
//! run with `engine_error` before anything is written, with a message naming the limit and
//! suggesting `output_format: csv` (cutting rows would lose data silently). More issues fill the
//! `issues` sheet and a console warning says how many were left out (the summaries count them;
//! `issues.csv`, with `output_format: csv`, lists them all). The output sheets are written in
//! rust_xlsxwriter's constant-memory mode: rows stream to temporary files in the run's directory
//! (removed when the workbook is saved or dropped), so the output costs no memory per row.
//!
//! Known gaps: `.xlsb` inputs are not accepted; parsing a CSV file and searching a sheet for its
//! tables send no progress line and are not interrupted (in a debug build a million-row CSV takes
//! about 15 s for both; in a release build well under a second).

mod output;
#[cfg(test)]
mod tests;

pub(crate) use ade_core::text::thousands;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use super::cell::Cell;
use super::csv_input::{CsvError, read_csv};
use super::detect::{TableRegion, find_tables, is_blank_row};
use super::fields::{CompiledField, CompiledFields};
use super::mapping::map_columns;
use super::validate::validate;
use super::workbook_input::{WorkbookError, WorkbookFormat, read_workbook_with};
use ade_core::config::{Configuration, EngineSpec, ExtractSpec, OutputFormat};
use ade_core::engine::{
    BuildArtifact, BuildContext, BuildOutcome, Builder, Engine, EngineContext, EngineFailure, EngineOutcome, EventSink,
};
use ade_core::event::{
    ConsoleLevel, ConsoleStream, PhaseStatus, Severity, TableMapping, TableMetadata, TableSummary, ValidationAggregate,
    ValidationIssue,
};
use ade_core::run::{Extra, RunMode};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

/// Rows between two cancellation checks.
use output::{MAX_XLSX_TEXT, Written, record_count, write_outputs};

const CANCEL_CHECK_ROWS: u64 = 1_000;
/// The least time between two progress lines of one long loop (validating, writing): a person
/// watching a million-row run sees it move, without a line per row.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// Excel's last row is 1,048,576 and the header row takes the first.
const XLSX_MAX_DATA_ROWS: u32 = 1_048_575;
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
        let failed = |code: &str, message: String| BuildOutcome::failed(EngineFailure::new(code, message));
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
        BuildOutcome::succeeded(artifact).with_summary(format!("{count} {noun} compiled"))
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

/// One issue, kept for the `issues` output.
#[derive(Debug)]
struct IssueRecord {
    /// The position of its sheet in the run's list of sheets.
    sheet: usize,
    issue: ValidationIssue,
}

/// What validation hands back: the sheets, every issue, and each table's summary with the end
/// of its issues in the list.
type Validated = (Vec<Sheet>, Vec<IssueRecord>, Vec<(TableSummary, usize)>);

/// Counts what a long loop on a blocking thread has done (rows validated, rows or issues
/// written): checks cancellation every [`CANCEL_CHECK_ROWS`] steps and, at most once per
/// `interval`, sends a progress line ("validated 400,000 of 1,000,000 rows") that the engine
/// forwards as a `console.line` (see [`forward_progress`]). Short loops send nothing: the first
/// line can only come after `interval`, and never for the last step (the phase's own line says
/// it is done).
#[derive(Debug)]
struct Progress {
    cancel: CancellationToken,
    lines: UnboundedSender<String>,
    interval: Duration,
    verb: &'static str,
    noun: &'static str,
    total: u64,
    done: u64,
    last: Instant,
}

impl Progress {
    fn new(cancel: CancellationToken, lines: UnboundedSender<String>, interval: Duration) -> Self {
        Progress { cancel, lines, interval, verb: "", noun: "", total: 0, done: 0, last: Instant::now() }
    }

    /// Starts counting a loop over `total` `noun`s: lines read "`verb` n of `total` `noun`".
    fn start(&mut self, verb: &'static str, noun: &'static str, total: u64) {
        (self.verb, self.noun, self.total, self.done, self.last) = (verb, noun, total, 0, Instant::now());
    }

    /// One more step done. `false` when the run was cancelled: the loop must stop.
    fn step(&mut self) -> bool {
        self.done += 1;
        if !self.done.is_multiple_of(CANCEL_CHECK_ROWS) {
            return true;
        }
        if self.cancel.is_cancelled() {
            return false;
        }
        if self.done < self.total && self.last.elapsed() >= self.interval {
            self.last = Instant::now();
            let line = format!("{} {} of {} {}", self.verb, thousands(self.done), thousands(self.total), self.noun);
            // The receiver is gone only when the engine stopped listening: nothing to tell.
            let _ = self.lines.send(line);
        }
        true
    }
}

/// Publishes each progress line of a blocking loop as an info `console.line` until the loop
/// ends (drops its [`Progress`]).
async fn forward_progress(sink: &EventSink, mut lines: UnboundedReceiver<String>) {
    while let Some(line) = lines.recv().await {
        let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, line).await;
    }
}

/// Validates every table's data rows (CPU work, for a blocking thread), counting them in
/// `progress`. `None` when the run was cancelled.
fn validate_sheets(mut sheets: Vec<Sheet>, fields: &CompiledFields, progress: &mut Progress) -> Option<Validated> {
    let mut issues = Vec::new();
    let mut summaries = Vec::new();
    progress.start("validated", "rows", record_count(&sheets));
    for (position, sheet) in sheets.iter_mut().enumerate() {
        let rows = &sheet.rows;
        for table in &mut sheet.tables {
            let region = table.region;
            // (sheet column, field, header) of each mapped field.
            let checks: Vec<(usize, &CompiledField, &str)> = table
                .mapping
                .mapped_columns
                .iter()
                .filter(|c| c.is_satisfied)
                .filter_map(|c| {
                    let field = fields.iter().find(|f| f.name() == c.field)?;
                    Some((usize::try_from(c.source_column_index).ok()?, field, c.header.as_str()))
                })
                .collect();
            for (index, row) in data_rows(rows, &region) {
                if !progress.step() {
                    return None;
                }
                for &(source, field, header) in &checks {
                    let cell = row.get(source).unwrap_or(&Cell::Empty);
                    let Some((severity, code, message)) = validate(cell, field) else { continue };
                    table.validation.record(severity, code, Some(field.name()));
                    let issue = ValidationIssue {
                        table_id: table.table_id.clone(),
                        severity,
                        code: code.to_owned(),
                        field: Some(field.name().to_owned()),
                        row: Some(to_u64(index + 1)),
                        column: Some(header.to_owned()),
                        value: (!cell.is_blank()).then(|| cell.issue_value()),
                        message,
                        extra: Extra::new(),
                    };
                    issues.push(IssueRecord { sheet: position, issue });
                }
            }
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
            summaries.push((summary, issues.len()));
        }
    }
    Some((sheets, issues, summaries))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

fn severity_text(severity: Severity) -> &'static str {
    severity.as_str()
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

/// One sheet of an input, as read: its index in the file, its name, its cells and its tables
/// (with their non-blank data row counts).
#[derive(Debug)]
struct InputSheet {
    index: u32,
    name: String,
    rows: Vec<Vec<Cell>>,
    tables: Vec<(TableRegion, u64)>,
}

impl InputSheet {
    /// The sheet with its tables found: CPU work, for a blocking thread.
    fn detect(index: u32, name: String, rows: Vec<Vec<Cell>>, fields: &CompiledFields) -> InputSheet {
        let tables = find_tables(&rows, fields)
            .into_iter()
            .map(|region| {
                let count = to_u64(data_rows(&rows, &region).count());
                (region, count)
            })
            .collect();
        InputSheet { index, name, rows, tables }
    }
}

/// Reads one input into its sheets' grids and finds their tables, or says why it cannot be. A
/// CSV file is one sheet, index 0, named after the file's stem; a workbook gives its worksheets
/// (only those named in `sheet_names`, when given). Parsing and detection run on a blocking
/// thread.
///
/// A workbook is read with progress: at most every [`PROGRESS_INTERVAL`] an info line on how many
/// rows of which sheet are read (published through `sink`), and `cancel` stops the reading
/// (`Ok(None)`). A CSV file is parsed whole (fast: a million rows take a fraction of a second).
async fn read_input(
    path: &Path,
    filename: &str,
    sheet_names: Option<&[String]>,
    fields: Arc<CompiledFields>,
    cancel: &CancellationToken,
    sink: &EventSink,
) -> Result<Option<Vec<InputSheet>>, EngineFailure> {
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
        let (lines, progress_lines) = unbounded_channel();
        let mut on_rows = {
            let (cancel, file, mut last) = (cancel.clone(), filename.to_owned(), Instant::now());
            move |sheet: &str, rows: usize| {
                if cancel.is_cancelled() {
                    return false;
                }
                if last.elapsed() >= PROGRESS_INTERVAL {
                    last = Instant::now();
                    // The receiver is gone only when the engine stopped listening.
                    let _ =
                        lines.send(format!("read {} of {file} sheet '{sheet}'", plural(to_u64(rows), "row", "rows")));
                }
                true
            }
        };
        // A panic in the reader surfaces as a join error, reported like any unreadable file.
        let reading = tokio::task::spawn_blocking(move || {
            let Some(sheets) = read_workbook_with(bytes, format, sheet_names.as_deref(), &mut on_rows)? else {
                return Ok(None);
            };
            Ok::<_, WorkbookError>(Some(
                sheets
                    .into_iter()
                    .map(|sheet| InputSheet::detect(sheet.index, sheet.name, sheet.rows, &fields))
                    .collect::<Vec<_>>(),
            ))
        });
        let (read, ()) = tokio::join!(reading, forward_progress(sink, progress_lines));
        let read = read
            .map_err(|error| input_error(format!("{filename} cannot be read: {error}")))?
            .map_err(|error| input_error(format!("{filename} {error}")))?;
        match read {
            Some(sheets) => sheets,
            None => return Ok(None),
        }
    } else {
        let stem = Path::new(filename)
            .file_stem()
            .map_or_else(|| filename.to_owned(), |stem| stem.to_string_lossy().into_owned());
        let sheet = tokio::task::spawn_blocking(move || {
            Ok::<_, CsvError>(InputSheet::detect(0, stem, read_csv(&bytes)?, &fields))
        })
        .await
        .map_err(|error| input_error(format!("{filename} cannot be read: {error}")))?
        .map_err(|error| input_error(format!("{filename}: {error}")))?;
        vec![sheet]
    };
    if sheets.iter().all(|sheet| sheet.rows.iter().all(|row| is_blank_row(row))) {
        return Err(input_error(format!("{filename} is empty")));
    }
    Ok(Some(sheets))
}

#[async_trait]
impl Engine for ExtractEngine {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    /// Every field's rules compile (patterns, bounds, allowed values): what a run would refuse.
    fn check(&self, configuration: &Configuration) -> Result<(), String> {
        let spec = extract_spec(configuration).ok_or("not an extract configuration")?;
        CompiledFields::compile(spec).map(drop).map_err(|e| e.to_string())
    }

    async fn run(&self, context: EngineContext, mut sink: EventSink) -> EngineOutcome {
        let Some(spec) = extract_spec(&context.configuration) else {
            return EngineOutcome::failed(EngineFailure::new("config_error", "not an extract configuration"));
        };
        let fields = match CompiledFields::compile(spec) {
            Ok(fields) => Arc::new(fields),
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
            let read =
                read_input(&input.path, &input.filename, sheet_names, Arc::clone(&fields), &context.cancel, &sink)
                    .await;
            let input_sheets = match read {
                Ok(Some(sheets)) => sheets,
                Ok(None) => return cancelled(),
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
            for InputSheet { index: sheet_index, name: source_sheet, rows, tables: regions } in input_sheets {
                let label = if is_workbook {
                    format!("{} sheet '{source_sheet}'", input.filename)
                } else {
                    input.filename.clone()
                };
                let mut tables = Vec::with_capacity(regions.len());
                for (table_index, (region, row_count)) in regions.into_iter().enumerate() {
                    let table_index = u32::try_from(table_index).unwrap_or(u32::MAX);
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
                for table in tables.iter().filter(|t| t.row_count == 0) {
                    // A header row alone is most likely a template or an export that went wrong:
                    // worth a person's attention, though the run goes on.
                    let message = format!(
                        "{label} table {}: the header on row {} has no data rows",
                        table.table_index + 1,
                        table.region.header_row + 1
                    );
                    let _ = sink.console(ConsoleLevel::Warn, ConsoleStream::Stdout, message).await;
                }
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
        let (lines, progress_lines) = unbounded_channel();
        let mut progress = Progress::new(context.cancel.clone(), lines, PROGRESS_INTERVAL);
        let blocking_fields = Arc::clone(&fields);
        let validating = tokio::task::spawn_blocking(move || validate_sheets(sheets, &blocking_fields, &mut progress));
        let (validated, ()) = tokio::join!(validating, forward_progress(&sink, progress_lines));
        let (sheets, issues, summaries) = match validated {
            Ok(Some(validated)) => validated,
            Ok(None) => return cancelled(),
            Err(error) => {
                let _ = sink.phase_completed("validating", PhaseStatus::Failed, elapsed_ms(start), None).await;
                return EngineOutcome::failed(EngineFailure::new(
                    "engine_error",
                    format!("validation failed: {error}"),
                ));
            }
        };
        let mut run_validation = ValidationAggregate::default();
        let mut published = 0;
        for (summary, issues_end) in summaries {
            for record in issues.get(published..issues_end).unwrap_or_default() {
                let _ = sink.issue(record.issue.clone()).await;
                published += 1;
                if to_u64(published).is_multiple_of(CANCEL_CHECK_ROWS) {
                    if context.cancel.is_cancelled() {
                        return cancelled();
                    }
                    // Beyond the sink's cap issues are only counted, without awaiting anything:
                    // let other tasks run now and then.
                    tokio::task::yield_now().await;
                }
            }
            run_validation.merge(&summary.validation);
            let table_id = summary.table_id.clone();
            if let Err(error) = sink.table_summary(summary).await {
                // A table of very many fields can be over the event size limit: say what is missing.
                let message = format!("the summary of table {table_id} was not published: {error}");
                let _ = sink.console(ConsoleLevel::Warn, ConsoleStream::Stderr, message).await;
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
            let issue_count = to_u64(issues.len());
            let (lines, progress_lines) = unbounded_channel();
            let progress = Progress::new(context.cancel.clone(), lines, PROGRESS_INTERVAL);
            let writing = write_outputs(&context.output_dir, sheets, fields, issues, xlsx, progress);
            let (written, ()) = tokio::join!(writing, forward_progress(&sink, progress_lines));
            match written {
                Ok(None) => return cancelled(),
                Ok(Some((paths, Written { cut, issues_left_out }))) => {
                    let files = to_u64(paths.len());
                    let message = format!(
                        "wrote {} ({}, {})",
                        paths.join(" and "),
                        plural(row_count, "row", "rows"),
                        plural(issue_count, "issue", "issues")
                    );
                    output_paths = paths;
                    let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, message).await;
                    if cut > 0 {
                        let message = format!(
                            "{} cut to Excel's limit of {} characters in normalized.xlsx",
                            plural(cut, "text", "texts"),
                            thousands(to_u64(MAX_XLSX_TEXT))
                        );
                        let _ = sink.console(ConsoleLevel::Warn, ConsoleStream::Stdout, message).await;
                    }
                    if issues_left_out > 0 {
                        let message = format!(
                            "{} left out of the issues sheet of normalized.xlsx (Excel's limit of {} rows per sheet); \
                             output_format: csv writes them all",
                            plural(issues_left_out, "issue", "issues"),
                            thousands(u64::from(XLSX_MAX_DATA_ROWS))
                        );
                        let _ = sink.console(ConsoleLevel::Warn, ConsoleStream::Stdout, message).await;
                    }
                    let wrote = metrics(&[("files", files), ("rows", row_count), ("issues", issue_count)]);
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
