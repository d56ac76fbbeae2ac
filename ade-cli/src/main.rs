//! `ade`: run configurations over files and look at runs and their events, against a server
//! (`--server URL`) or embedded in this process (the default: `--data-dir`, `--config-dir`).
//!
//! Exit codes: 0 the run succeeded (or the command worked), 1 the run failed or was cancelled,
//! 2 usage, connection or API errors.

use std::path::PathBuf;
use std::process::ExitCode;

use ade_client::core::event::{ConfigurationId, Envelope, EventPayload, RunId, WorkspaceId};
use ade_client::core::run::{Run, RunStatus};
use ade_client::{Client, Error, ListRuns, NewRun};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt as _;

/// `println!` that does not panic when stdout is closed (`ade … | head`): the line is dropped.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Debug, Parser)]
#[command(name = "ade", version, about = "Runs and their event streams")]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Target {
    /// The server's URL; without it, ade runs embedded in this process.
    #[arg(long, global = true, env = "ADE_SERVER")]
    server: Option<String>,
    /// Bearer token for the server.
    #[arg(long, global = true, env = "ADE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Embedded: the data directory.
    #[arg(long, global = true, env = "ADE_DATA_DIR", default_value = "ade-data")]
    data_dir: PathBuf,
    /// Embedded: the directory of configuration files.
    #[arg(long, global = true, env = "ADE_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// The workspace.
    #[arg(long, global = true)]
    workspace: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Uploads FILEs, runs a configuration over them, follows the run and prints its summary.
    Run {
        /// Input files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The configuration to run.
        #[arg(long)]
        config: String,
    },
    /// Lists, shows or cancels runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Prints a run's events: those that exist now, or (with --follow) up to run.completed.
    Events {
        /// The run.
        run: String,
        /// Follow the live stream to the run's end.
        #[arg(long)]
        follow: bool,
        /// Print each event as its JSON line.
        #[arg(long)]
        ndjson: bool,
        /// Only events with a sequence above N.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Uploads a file; prints the document.
    Upload {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List {
        /// Only runs in this status.
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this configuration.
        #[arg(long)]
        config: Option<String>,
        /// At most N runs.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One run as JSON.
    Get {
        /// The run.
        run: String,
    },
    /// Asks a run to stop.
    Cancel {
        /// The run.
        run: String,
    },
}

/// Why a command failed: usage (bad argument) or the client's error; both exit 2.
#[derive(Debug)]
enum Failure {
    Usage(String),
    Client(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::Client(error)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(message) => write!(f, "{message}"),
            Self::Client(error) => write!(f, "{error}"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ade: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("ade: {failure}");
            ExitCode::from(2)
        }
    }
}

async fn execute(cli: Cli) -> Result<ExitCode, Failure> {
    let (client, embedded) = connect(&cli.target).await?;
    let workspace = match &cli.target.workspace {
        Some(text) => Some(WorkspaceId::new(text.as_str()).map_err(|e| Failure::Usage(format!("--workspace: {e}")))?),
        None => None,
    };
    let result = command(&client, embedded.as_ref(), workspace, cli.command).await;
    if let Some(runtime) = embedded {
        runtime.shutdown().await;
    }
    result
}

async fn connect(target: &Target) -> Result<(Client, Option<ade_client::core::Runtime>), Failure> {
    if let Some(url) = &target.server {
        let client = Client::new(url.as_str())?;
        let client = match &target.token {
            Some(token) => client.with_token(token.as_str()),
            None => client,
        };
        return Ok((client, None));
    }
    let builder = ade_client::core::Runtime::builder();
    #[cfg(feature = "extract")]
    let builder = ade_extract::register(builder);
    let mut builder = builder.data_dir(&target.data_dir);
    if let Some(dir) = &target.config_dir {
        builder = builder.configurations_dir(dir);
    }
    let runtime = builder.build().await.map_err(|e| Failure::Usage(format!("cannot start embedded ade: {e}")))?;
    Ok((Client::local(runtime.clone()), Some(runtime)))
}

fn run_id(text: &str) -> Result<RunId, Failure> {
    text.parse().map_err(|_| Failure::Usage(format!("{text:?} is not a run id (run_…)")))
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("(cannot show: {e})"))
}

async fn command(
    client: &Client,
    embedded: Option<&ade_client::core::Runtime>,
    workspace: Option<WorkspaceId>,
    command: Command,
) -> Result<ExitCode, Failure> {
    match command {
        Command::Upload { file } => {
            let document = upload(client, &file, workspace.as_ref()).await?;
            say!("{}", json(&document));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { files, config } => {
            let configuration = ConfigurationId::new(config.as_str())
                .map_err(|e| Failure::Usage(format!("--config {config:?}: {e}")))?;
            // An unknown configuration is refused before anything is uploaded.
            client.get_configuration(&configuration).await?;
            let mut request = NewRun::new(configuration);
            if let Some(workspace) = workspace.clone() {
                request = request.workspace(workspace);
            }
            for file in &files {
                let document = upload(client, file, workspace.as_ref()).await?;
                say!("uploaded {} as {}", file.display(), document.id);
                request = request.document(document.id);
            }
            let run = client.create_run(&request).await?.into_run();
            say!("run {} created", run.id);
            follow(client, run.id).await?;
            let run = client.get_run(run.id).await?;
            print_summary(client, embedded, &run);
            Ok(if run.status == RunStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Runs { command } => match command {
            RunsCommand::List { status, config, limit } => {
                let mut filter = ListRuns::default();
                if let Some(workspace) = workspace {
                    filter = filter.workspace(workspace);
                }
                if let Some(text) = status {
                    let status: RunStatus = serde_json::from_value(serde_json::Value::String(text.clone()))
                        .map_err(|_| Failure::Usage(format!("--status {text:?} is not a run status")))?;
                    filter = filter.status(status);
                }
                if let Some(text) = config {
                    let id =
                        ConfigurationId::new(text.as_str()).map_err(|e| Failure::Usage(format!("--config: {e}")))?;
                    filter = filter.configuration(id);
                }
                if let Some(limit) = limit {
                    filter = filter.limit(limit);
                }
                let page = client.list_runs(&filter).await?;
                for run in &page.runs {
                    say!("{}  {:<9}  {}  {}", run.id, run.status.as_str(), run.configuration_id, run.created_at);
                }
                if let Some(cursor) = page.next_cursor {
                    say!("(more: cursor {cursor})");
                }
                Ok(ExitCode::SUCCESS)
            }
            RunsCommand::Get { run } => {
                say!("{}", json(&client.get_run(run_id(&run)?).await?));
                Ok(ExitCode::SUCCESS)
            }
            RunsCommand::Cancel { run } => {
                let run = client.cancel(run_id(&run)?).await?;
                say!("cancelling {} (was {})", run.id, run.status.as_str());
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Events { run, follow: live, ndjson, after } => {
            let id = run_id(&run)?;
            if live {
                let mut events = client.events(id, after);
                while let Some(event) = events.next().await {
                    print_event(&event?, ndjson);
                }
            } else {
                for event in client.events_log(id, after).await? {
                    print_event(&event, ndjson);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn upload(
    client: &Client,
    file: &std::path::Path,
    workspace: Option<&WorkspaceId>,
) -> Result<ade_client::core::store::Document, Failure> {
    let bytes =
        tokio::fs::read(file).await.map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "document".to_owned());
    Ok(client.upload_document(&name, bytes, workspace).await?)
}

/// Where progress goes: a spinner with a status line on a terminal, plain lines otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Plain,
}

impl Progress {
    fn new() -> Self {
        use std::io::IsTerminal as _;
        if !std::io::stdout().is_terminal() {
            return Self::Plain;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed} {wide_msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self::Bar(bar)
    }

    /// A line that stays (a table found, an error, the end).
    fn line(&self, text: String) {
        match self {
            Self::Bar(bar) => bar.println(text),
            Self::Plain => say!("{text}"),
        }
    }

    /// The current state: the spinner's message, or a plain line.
    fn status(&self, text: String) {
        match self {
            Self::Bar(bar) => bar.set_message(text),
            Self::Plain => say!("{text}"),
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Follows a run to its end, showing its phases, the tables found and the issues so far.
async fn follow(client: &Client, id: RunId) -> Result<(), Failure> {
    let progress = Progress::new();
    let result = follow_with(client, id, &progress).await;
    progress.finish();
    result
}

async fn follow_with(client: &Client, id: RunId, progress: &Progress) -> Result<(), Failure> {
    let mut events = client.events(id, 0);
    let mut tables = 0u64;
    let mut issues = 0u64;
    let mut phase = String::from("queued");
    while let Some(event) = events.next().await {
        let event = event?;
        match &event.payload {
            EventPayload::BuildStarted(_) => phase = "build".to_owned(),
            EventPayload::BuildPhaseStarted(started) => phase = format!("build: {}", started.phase),
            EventPayload::BuildCompleted(_) => phase = "build: completed".to_owned(),
            EventPayload::RunStarted(_) => phase = "run: started".to_owned(),
            EventPayload::RunPhaseStarted(started) => phase = format!("run: {}", started.phase),
            EventPayload::RunTableSummary(table) => {
                tables += 1;
                progress.line(format!(
                    "table {tables}: {} / {} — {} rows, {} fields mapped",
                    table.source_file, table.source_sheet, table.row_count, table.mapped_field_count
                ));
                continue;
            }
            EventPayload::RunValidationIssue(_) => {
                issues += 1;
                // Plain output shows the count as it doubles, not once per issue.
                if matches!(progress, Progress::Plain) && !issues.is_power_of_two() {
                    continue;
                }
            }
            EventPayload::RunError(error) => {
                progress.line(format!("error: {}", error_message(&event, error)));
                continue;
            }
            EventPayload::RunCompleted(done) => {
                progress.line(format!("run: completed ({:?})", done.status));
                continue;
            }
            _ => continue,
        }
        progress.status(format!("{phase} · tables {tables} · issues so far {issues}"));
    }
    Ok(())
}

fn error_message(event: &Envelope, _error: &ade_client::core::event::RunError) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v["payload"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no message)".to_owned())
}

fn print_event(event: &Envelope, ndjson: bool) {
    if ndjson {
        match event.to_json() {
            Ok(line) => say!("{line}"),
            Err(error) => eprintln!("ade: event {} cannot be shown: {error}", event.sequence),
        }
        return;
    }
    let detail = match &event.payload {
        EventPayload::ConsoleLine(line) => line.message.clone(),
        EventPayload::RunPhaseStarted(phase) | EventPayload::BuildPhaseStarted(phase) => phase.phase.clone(),
        EventPayload::RunCompleted(done) => format!("{:?}", done.status),
        _ => String::new(),
    };
    say!("{:>5} {:<24} {detail}", event.sequence, event.event_type());
}

fn print_summary(client: &Client, embedded: Option<&ade_client::core::Runtime>, run: &Run) {
    say!();
    say!("run {}: {}", run.id, run.status.as_str());
    if let Some(failure) = &run.failure {
        say!("  failure: {} ({})", failure.message, failure.code);
    }
    if let Some(summary) = &run.summary {
        let core = &summary.core;
        if let Some(seconds) = summary.run.duration_seconds {
            say!("  duration: {seconds:.2} s");
        }
        say!("  inputs: {} file(s), {} sheet(s)", core.input_file_count, core.input_sheet_count);
        say!("  tables: {}, rows: {}", core.table_count, core.row_count);
        say!(
            "  fields: {} of {} mapped ({} required), {} unmapped column(s)",
            core.mapped_field_count,
            core.canonical_field_count,
            core.required_field_count,
            core.unmapped_column_count
        );
        say!("  issues: {}", core.validation_issue_count_total);
        for (severity, count) in &core.issue_counts_by_severity {
            say!("    {severity:?}: {count}");
        }
    }
    let outputs = outputs(client, embedded, run);
    if !outputs.is_empty() {
        say!("  outputs:");
        for output in outputs {
            say!("    {output}");
        }
    }
}

/// Where the run's output files are: paths on disk when embedded, URLs on a server.
fn outputs(client: &Client, embedded: Option<&ade_client::core::Runtime>, run: &Run) -> Vec<String> {
    let Some(runtime) = embedded else {
        return vec![client.resolve(&run.links.outputs)];
    };
    let dir = runtime.run_dir(&run.workspace_id, run.id).join("outputs");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().display().to_string()).collect())
        .unwrap_or_default();
    files.sort();
    files
}
