//! The `extract` engine against the bare readers: a generated 100,000-row × 20-column XLSX and the
//! same data as CSV, whole run (`create_run` → `run.completed`, execute mode, normalized XLSX
//! written) vs. calamine (resp. the csv crate) alone reading every cell of the file.
//!
//! Run with: `cargo run --release --example bench_extract` (add `-- --quick` for 10,000 rows;
//! `-- --rows N --repeats R` for other sizes, e.g. a 1,000,000-row sheet).
//! Also times rust_xlsxwriter alone writing the same cells as the engine writes its normalized
//! XLSX (`xlsx_write_s`): a run reads, then writes, so bare read + bare write is its floor.
//! Prints a table, then as its last line one JSON object:
//! `{"xlsx_run_s", "xlsx_read_s", "csv_run_s", "csv_read_s", "xlsx_write_s", "cells_per_sec"}`,
//! where `cells_per_sec` is the data cells (rows × 20) divided by the slower of the two whole runs.
//! Every figure is the median of 3 repetitions. `BENCH_VERBOSE=1` prints each run's phase times.

use std::path::Path;
use std::time::Instant;

use ade::dispatch::After;
use ade::event::{EventPayload, WorkspaceId};
use ade::run::RunOutcome;
use ade::{CreateRun, Runtime};
use calamine::{Data, Reader, Xlsx, open_workbook};
use futures::StreamExt;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet};

// The benchmarks run on mimalloc; the library does not choose an allocator and `ade-server`
// keeps the system one (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const COLUMNS: usize = 20;
const REPEATS: usize = 3;

/// The headers of the generated sheet, as a person would write them.
const HEADERS: [&str; COLUMNS] = [
    "Member ID",
    "First name",
    "Last name",
    "E-mail",
    "Phone",
    "City",
    "Country",
    "Joined on",
    "Date of birth",
    "Balance",
    "Credit limit",
    "Visits",
    "Age",
    "Active",
    "Tier",
    "Score",
    "Postcode",
    "Street",
    "Company",
    "Notes",
];

/// The configuration: one field per column, named after (not identical to) the headers.
fn configuration() -> serde_json::Value {
    serde_json::json!({
        "id": "bench",
        "version": "1",
        "engine": "extract",
        "output_format": "xlsx",
        "fields": [
            { "name": "member_id", "label": "Member ID", "type": "integer", "required": true },
            { "name": "first_name", "label": "First name", "required": true },
            { "name": "last_name", "label": "Last name" },
            { "name": "email", "label": "E-mail", "type": "email" },
            { "name": "phone", "pattern": "\\+?[0-9 ]{7,20}" },
            { "name": "city" },
            { "name": "country", "allowed_values": ["NL", "DE", "FR", "BE", "UK"] },
            { "name": "joined_on", "label": "Joined on", "type": "date" },
            { "name": "birth_date", "label": "Date of birth", "type": "date" },
            { "name": "balance", "type": "number" },
            { "name": "credit_limit", "label": "Credit limit", "type": "number", "min": 0 },
            { "name": "visits", "type": "integer" },
            { "name": "age", "type": "integer", "min": 0, "max": 130 },
            { "name": "active", "type": "boolean" },
            { "name": "tier", "allowed_values": ["basic", "plus", "gold"] },
            { "name": "score", "type": "number" },
            { "name": "postcode", "synonyms": ["zip"] },
            { "name": "street" },
            { "name": "company" },
            { "name": "notes", "max": 200 },
        ],
    })
}

/// One generated value.
enum Value {
    Text(String),
    Number(f64),
    Date(u16, u8, u8),
    Bool(bool),
}

impl Value {
    fn csv(&self) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::Number(n) => n.to_string(),
            Value::Date(y, m, d) => format!("{y:04}-{m:02}-{d:02}"),
            Value::Bool(b) => b.to_string(),
        }
    }
}

const FIRST: [&str; 8] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Niklaus"];
const LAST: [&str; 8] = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Wirth"];
const CITIES: [&str; 6] = ["Amsterdam", "Berlin", "Paris", "Brussels", "London", "Utrecht"];
const COUNTRIES: [&str; 5] = ["NL", "DE", "FR", "BE", "UK"];
const TIERS: [&str; 3] = ["basic", "plus", "gold"];

/// Row `i`'s values: realistic, varied, with a few invalid ones (about 1.5% of rows have one).
fn row(i: usize) -> Vec<Value> {
    use Value::{Bool, Date, Number, Text};
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / 8) % LAST.len()];
    let email = if i % 97 == 5 {
        format!("{}.{}-at-example.org", first.to_lowercase(), i)
    } else {
        format!("{}.{}{}@example.org", first.to_lowercase(), last.to_lowercase(), i)
    };
    let member_id = if i % 1_000 == 7 { Text(String::new()) } else { Number((100_000 + i) as f64) };
    let age = if i % 500 == 3 { Text("n/a".to_owned()) } else { Number((18 + i % 70) as f64) };
    let country = if i % 250 == 11 { "Narnia" } else { COUNTRIES[i % COUNTRIES.len()] };
    let month = u8::try_from(1 + i % 12).unwrap_or(1);
    let day = u8::try_from(1 + i % 28).unwrap_or(1);
    vec![
        member_id,
        Text(first.to_owned()),
        Text(last.to_owned()),
        Text(email),
        Text(format!("+31 6 {:08}", (i * 7_919) % 100_000_000)),
        Text(CITIES[i % CITIES.len()].to_owned()),
        Text(country.to_owned()),
        Date(2000 + u16::try_from(i % 25).unwrap_or(0), month, day),
        Date(1950 + u16::try_from(i % 50).unwrap_or(0), month, day),
        Number(((i * 37) % 100_000) as f64 / 100.0),
        Number(((i % 20) * 500) as f64),
        Number((i % 365) as f64),
        age,
        Bool(!i.is_multiple_of(3)),
        Text(TIERS[i % TIERS.len()].to_owned()),
        Number((i % 1_000) as f64 / 10.0),
        Text(format!(
            "{:04} {}{}",
            1_000 + i % 9_000,
            (b'A' + (i % 26) as u8) as char,
            (b'A' + (i / 26 % 26) as u8) as char
        )),
        Text(format!("{} Main Street", 1 + i % 300)),
        Text(format!("Company {}", i % 2_000)),
        Text(if i.is_multiple_of(10) { format!("note on member {i}") } else { String::new() }),
    ]
}

/// Writes `rows` data rows (plus a title row, a blank row and the header) as `data.xlsx` and
/// `data.csv` into `dir`.
fn generate(dir: &Path, rows: usize) -> Result<(), BoxError> {
    let mut workbook = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let worksheet = workbook.add_worksheet();
    worksheet.set_name("Members")?;
    worksheet.write_string(0, 0, "Member list (generated)")?;
    let mut csv = csv::WriterBuilder::new().flexible(true).from_path(dir.join("data.csv"))?;
    csv.write_record(["Member list (generated)"])?;
    csv.write_record([""])?;
    for (column, header) in HEADERS.iter().enumerate() {
        worksheet.write_string(2, u16::try_from(column)?, *header)?;
    }
    csv.write_record(HEADERS)?;
    for i in 0..rows {
        let values = row(i);
        write_row(worksheet, u32::try_from(i + 3)?, &values, &date)?;
        csv.write_record(values.iter().map(Value::csv))?;
    }
    workbook.save(dir.join("data.xlsx"))?;
    csv.flush()?;
    Ok(())
}

/// Writes one row of values at spreadsheet row `r` (from 0).
fn write_row(worksheet: &mut Worksheet, r: u32, values: &[Value], date: &Format) -> Result<(), BoxError> {
    for (column, value) in values.iter().enumerate() {
        let c = u16::try_from(column)?;
        match value {
            Value::Text(text) if text.is_empty() => {}
            Value::Text(text) => {
                worksheet.write_string(r, c, text)?;
            }
            Value::Number(n) => {
                worksheet.write_number(r, c, *n)?;
            }
            Value::Date(y, m, d) => {
                worksheet.write_datetime_with_format(r, c, ExcelDateTime::from_ymd(*y, *m, *d)?, date)?;
            }
            Value::Bool(b) => {
                worksheet.write_boolean(r, c, *b)?;
            }
        }
    }
    Ok(())
}

/// rust_xlsxwriter alone, set up as the engine sets it up for its output (one worksheet in
/// constant-memory mode, zip compression level 1): writes a header and `rows` (made before the
/// clock starts) to `path`. Returns the seconds taken. A whole run that reads, then writes, takes
/// at least the bare read plus this.
fn write_xlsx(path: &Path, rows: &[Vec<Value>]) -> Result<f64, BoxError> {
    let started = Instant::now();
    let mut workbook = Workbook::new();
    workbook.set_zip_compression_level(1);
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let worksheet = workbook.add_worksheet_with_constant_memory()?;
    worksheet.set_name("normalized")?;
    for (column, header) in HEADERS.iter().enumerate() {
        worksheet.write_string(0, u16::try_from(column)?, *header)?;
    }
    for (i, values) in rows.iter().enumerate() {
        write_row(worksheet, u32::try_from(i + 1)?, values, &date)?;
    }
    workbook.save(path)?;
    Ok(started.elapsed().as_secs_f64())
}

/// calamine alone: opens the workbook, reads the sheet and looks at every cell. Returns the
/// seconds taken and the number of non-empty cells.
fn read_xlsx(path: &Path) -> Result<(f64, usize), BoxError> {
    let started = Instant::now();
    let mut workbook: Xlsx<_> = open_workbook(path)?;
    let range = workbook.worksheet_range("Members")?;
    let cells = range.rows().flatten().filter(|cell| !matches!(cell, Data::Empty)).count();
    Ok((started.elapsed().as_secs_f64(), cells))
}

/// The csv crate alone: reads every record and looks at every field. Returns the seconds taken
/// and the number of non-empty fields.
fn read_csv(path: &Path) -> Result<(f64, usize), BoxError> {
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(path)?;
    let mut record = csv::ByteRecord::new();
    let mut cells = 0;
    while reader.read_byte_record(&mut record)? {
        cells += record.iter().filter(|field| !field.is_empty()).count();
    }
    Ok((started.elapsed().as_secs_f64(), cells))
}

/// One whole run over `path` (already a stored document): `create_run` until `run.completed`.
/// Returns the seconds taken and the rows the table summary reports.
async fn run_once(runtime: &Runtime, path: &Path) -> Result<(f64, u64), BoxError> {
    let document = runtime.upload_file(&WorkspaceId::default(), path).await?;
    let started = Instant::now();
    let run = runtime.create_run(CreateRun::new("bench".parse()?).document(document.id)).await?.into_run();
    let mut events = runtime.subscribe(None, run.id, After(0)).await?;
    let mut rows = 0;
    let mut outcome = None;
    while let Some(event) = events.next().await {
        let event = event?;
        match &event.envelope()?.payload {
            EventPayload::RunTableSummary(table) => rows += table.row_count,
            EventPayload::RunPhaseCompleted(phase) if std::env::var_os("BENCH_VERBOSE").is_some() => {
                eprintln!("  {}: {} ms", phase.phase, phase.duration_ms);
            }
            EventPayload::RunCompleted(done) => outcome = Some((done.status, done.failure.clone())),
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Some((RunOutcome::Succeeded, _)) => Ok((seconds, rows)),
        other => Err(format!("the run over {} did not succeed: {other:?}", path.display()).into()),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let value_of = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)?.parse().ok());
    let quick = args.iter().any(|a| a == "--quick");
    let rows: usize = value_of("--rows").unwrap_or(if quick { 10_000 } else { 100_000 });
    let repeats: usize = value_of("--repeats").unwrap_or(REPEATS);
    let cells = rows * COLUMNS;
    let inputs = tempfile::tempdir()?;
    let started = Instant::now();
    generate(inputs.path(), rows)?;
    let xlsx = inputs.path().join("data.xlsx");
    let csv_path = inputs.path().join("data.csv");
    eprintln!(
        "generated {rows} rows x {COLUMNS} columns in {:.1}s (xlsx {} KiB, csv {} KiB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&xlsx)?.len() / 1024,
        std::fs::metadata(&csv_path)?.len() / 1024
    );

    let data_dir = tempfile::tempdir()?;
    let runtime = ade::extract::register(Runtime::builder())
        .data_dir(data_dir.path())
        .workers(1)
        .configuration(serde_json::from_value(configuration())?)
        .build()
        .await?;

    let values: Vec<Vec<Value>> = (0..rows).map(row).collect();
    let (mut xlsx_read, mut csv_read, mut xlsx_run, mut csv_run) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut xlsx_write = Vec::new();
    for _ in 0..repeats {
        xlsx_write.push(write_xlsx(&inputs.path().join("written.xlsx"), &values)?);
        let (seconds, _) = read_xlsx(&xlsx)?;
        xlsx_read.push(seconds);
        let (seconds, table_rows) = run_once(&runtime, &xlsx).await?;
        if table_rows != rows as u64 {
            return Err(format!("the xlsx run found {table_rows} rows, not {rows}").into());
        }
        xlsx_run.push(seconds);
        let (seconds, _) = read_csv(&csv_path)?;
        csv_read.push(seconds);
        let (seconds, table_rows) = run_once(&runtime, &csv_path).await?;
        if table_rows != rows as u64 {
            return Err(format!("the csv run found {table_rows} rows, not {rows}").into());
        }
        csv_run.push(seconds);
    }
    runtime.shutdown().await;

    let (xlsx_read, xlsx_run, csv_read, csv_run) =
        (median(xlsx_read), median(xlsx_run), median(csv_read), median(csv_run));
    let xlsx_write = median(xlsx_write);
    let cells_per_sec = cells as f64 / xlsx_run.max(csv_run);
    println!("{rows} rows x {COLUMNS} columns = {cells} cells, median of {repeats}");
    println!("bare write of the same cells as normalized XLSX (rust_xlsxwriter alone): {xlsx_write:.3} s");
    println!("| format | bare read (s) | whole run (s) | run / read | (read + write) / read | cells/s (run) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, read, run) in [("xlsx", xlsx_read, xlsx_run), ("csv", csv_read, csv_run)] {
        let floor = (read + xlsx_write) / read;
        println!("| {name} | {read:.3} | {run:.3} | {:.2} | {floor:.2} | {:.0} |", run / read, cells as f64 / run);
    }
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "xlsx_run_s": round(xlsx_run),
            "xlsx_read_s": round(xlsx_read),
            "csv_run_s": round(csv_run),
            "csv_read_s": round(csv_read),
            "xlsx_write_s": round(xlsx_write),
            "cells_per_sec": cells_per_sec.round(),
        })
    );
    Ok(())
}
