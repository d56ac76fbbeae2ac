//! `ade`: run configurations over files and look at runs and their events, against a server
//! (`--server URL`) or embedded in this process (the default: `--data-dir`, `--config-dir`).
//!
//! Exit codes: see [`EXIT_CODES`].

use ade_client::model::text::thousands;
use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ade_client::core::config::{Configuration, EngineSpec};
use ade_client::core::event::{
    ConfigurationId, ConsoleLevel, Envelope, EventPayload, RunId, ValidationAggregate, WorkspaceId,
};
use ade_client::core::run::{Run, RunMode, RunStatus};
use ade_client::{Client, Error, ListRuns, NewRun};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt as _;
use tokio::sync::mpsc;

/// `println!` that does not panic when stdout is closed (`ade … | head`): the line is dropped.
macro_rules! say {
    () => {{
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that does not panic when stderr is closed.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod webhooks;

/// The exit codes, as `--help` shows them.
const EXIT_CODES: &str = "\
Exit codes:
  0    the command worked (`run`: the run succeeded)
  1    the run failed or was cancelled (`run`; also after Ctrl-C cancelled an embedded run)
  2    usage, connection, configuration or API errors
  130  interrupted: Ctrl-C left a run going (against a server, or a second Ctrl-C when embedded)";

/// Exit status for a run left going after Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(name = "ade", version, about = "Runs and their event streams", after_help = EXIT_CODES)]
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

/// What a run is asked to do (`--mode`).
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum Mode {
    /// Process the inputs and write outputs.
    Execute,
    /// Build, then validate the inputs without writing outputs.
    ValidateOnly,
    /// Run fully but write no outputs.
    DryRun,
}

impl From<Mode> for RunMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Execute => Self::Execute,
            Mode::ValidateOnly => Self::ValidateOnly,
            Mode::DryRun => Self::DryRun,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Uploads FILEs, runs a configuration over them, follows the run and prints its summary.
    ///
    /// Ctrl-C: embedded, cancels the run and waits for its end (a second Ctrl-C leaves at once);
    /// against a server, leaves the run going and says how to follow or cancel it.
    Run {
        /// Input files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The configuration to run: its id, or a configuration file (registered embedded, put on
        /// a server).
        #[arg(long)]
        config: String,
        /// What the engine is asked to do.
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// Print the run's events as NDJSON on stdout (one envelope a line, nothing else);
        /// progress and the summary go to stderr.
        #[arg(long)]
        json: bool,
        /// Show every console line of the engine (without it: warnings and errors only).
        #[arg(short, long)]
        verbose: bool,
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
    /// Lists, shows or puts configurations.
    Configurations {
        #[command(subcommand)]
        command: ConfigurationsCommand,
    },
    /// Lists, creates, shows, deletes or enables webhooks, or shows their deliveries (against a
    /// server).
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Lists a run's output files, or downloads one (to stdout, or to a file with -o).
    Outputs {
        /// The run.
        run: String,
        /// The output to download; without it, the list.
        name: Option<String>,
        /// Write the output to FILE (`-` for stdout).
        #[arg(short, long, value_name = "FILE", requires = "name")]
        output: Option<PathBuf>,
        /// The list as JSON.
        #[arg(long, conflicts_with = "name")]
        json: bool,
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
        /// The page after this cursor (the previous page's `next_cursor`).
        #[arg(long)]
        cursor: Option<String>,
        /// The page as JSON: `{"runs": [...], "next_cursor": ...}`.
        #[arg(long)]
        json: bool,
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

#[derive(Debug, Subcommand)]
enum ConfigurationsCommand {
    /// The configurations known (id, version, engine).
    List {
        /// The list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One configuration as JSON.
    Show {
        /// The configuration's id.
        id: String,
    },
    /// Creates or replaces a configuration from a file (embedded: kept in the data directory,
    /// `extract` configurations only, as a server does).
    Put {
        /// The configuration file.
        file: PathBuf,
    },
}

/// Why a command failed; every kind exits 2.
#[derive(Debug)]
enum Failure {
    /// A bad argument, or a message that already says what to do.
    Usage(String),
    /// The client's error.
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
            note!("ade: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    let server = cli.target.server.clone();
    let result = runtime.block_on(execute(cli));
    // A run left going (detached) may still have tasks: they are dropped, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(failure) => {
            note!("ade: {}", explain(&failure, server.as_deref()));
            ExitCode::from(2)
        }
    }
}

/// The failure's message, naming the fix where there is one.
fn explain(failure: &Failure, server: Option<&str>) -> String {
    let Failure::Client(error) = failure else { return failure.to_string() };
    let transport = match error {
        Error::Transport(transport) => Some(transport),
        Error::GaveUp { last, .. } => match last.as_ref() {
            Error::Transport(transport) => Some(transport),
            _ => None,
        },
        _ => None,
    };
    if let Some(problem) = error.problem() {
        let status = format!("{} {}", problem.status, problem.title.to_lowercase());
        return if problem.detail.trim().is_empty() { status } else { format!("{} ({status})", problem.detail) };
    }
    let (Some(transport), Some(url)) = (transport, server) else { return error.to_string() };
    if refused(transport) {
        return format!("connection refused: is ade-server running at {url}?");
    }
    if transport.is_connect() {
        return format!("cannot connect to {url} ({error}): is ade-server running there?");
    }
    error.to_string()
}

/// Whether the connection was refused (an `io::Error` of that kind somewhere in the chain).
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = current.source();
    }
    false
}

async fn execute(cli: Cli) -> Result<ExitCode, Failure> {
    let workspace = match &cli.target.workspace {
        Some(text) => Some(WorkspaceId::new(text.as_str()).map_err(|e| Failure::Usage(format!("--workspace: {e}")))?),
        None => None,
    };
    let (client, embedded) = connect(&cli.target).await?;
    let context = Context { client, embedded, target: cli.target, workspace };
    let result = command(&context, cli.command).await;
    if let Some(runtime) = &context.embedded
        && !matches!(result, Ok(Outcome::Detached))
    {
        runtime.shutdown().await;
    }
    result.map(Outcome::code)
}

/// What a command ended with.
enum Outcome {
    Exit(ExitCode),
    /// A run was left going after Ctrl-C.
    Detached,
}

impl Outcome {
    fn code(self) -> ExitCode {
        match self {
            Self::Exit(code) => code,
            Self::Detached => ExitCode::from(INTERRUPTED),
        }
    }
}

struct Context {
    client: Client,
    embedded: Option<ade_client::core::Runtime>,
    target: Target,
    workspace: Option<WorkspaceId>,
}

impl Context {
    /// The global options that reach the same runs again, for the hints this prints.
    fn again(&self) -> String {
        match &self.target.server {
            Some(url) => format!("ade --server {url}"),
            None => format!("ade --data-dir {}", self.target.data_dir.display()),
        }
    }
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
    let mut directory_ids = Vec::new();
    if let Some(dir) = &target.config_dir {
        let loaded = Configuration::load_dir(dir, usize::MAX)
            .map_err(|e| Failure::Usage(format!("--config-dir {}: {e}", dir.display())))?;
        directory_ids = loaded.iter().map(|c| c.id.clone()).collect();
        builder = builder.configurations_dir(dir);
    }
    // Configurations put with `ade configurations put` (or a server's PUT) on this data
    // directory; the configuration directory wins, as in ade-server.
    let stored = stored_configurations_dir(&target.data_dir);
    if stored.is_dir() {
        let loaded = Configuration::load_dir(&stored, usize::MAX)
            .map_err(|e| Failure::Usage(format!("stored configurations: {e}")))?;
        for configuration in loaded {
            if !directory_ids.contains(&configuration.id) && matches!(configuration.engine, EngineSpec::Extract(_)) {
                builder = builder.configuration(configuration);
            }
        }
    }
    let runtime = builder.build().await.map_err(|error| match error {
        ade_client::core::Error::DataDirInUse(dir) => Failure::Usage(format!(
            "data directory {} is in use (a server?): pass --server URL or --data-dir DIR",
            dir.display()
        )),
        error => Failure::Usage(format!("cannot start embedded ade: {error}")),
    })?;
    Ok((Client::local(runtime.clone()), Some(runtime)))
}

/// Where configurations put over the API are kept: `<data_dir>/configurations`, as ade-server.
fn stored_configurations_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("configurations")
}

fn run_id(text: &str) -> Result<RunId, Failure> {
    text.parse().map_err(|_| Failure::Usage(format!("{text:?} is not a run id (run_…)")))
}

fn configuration_id(text: &str, what: &str) -> Result<ConfigurationId, Failure> {
    ConfigurationId::new(text).map_err(|e| Failure::Usage(format!("{what} {text:?}: {e}")))
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("(cannot show: {e})"))
}

/// `n thing` / `n things`, with separators.
fn count(n: u64, thing: &str) -> String {
    format!("{} {thing}{}", thousands(n), if n == 1 { "" } else { "s" })
}

async fn command(context: &Context, command: Command) -> Result<Outcome, Failure> {
    let client = &context.client;
    let done = || Ok(Outcome::Exit(ExitCode::SUCCESS));
    match command {
        Command::Upload { file } => {
            let document = upload(client, &file, context.workspace.as_ref()).await?;
            say!("{}", json(&document));
            done()
        }
        Command::Run { files, config, mode, json, verbose } => {
            run(context, RunArgs { files, config, mode, json, verbose }).await
        }
        Command::Runs { command } => match command {
            RunsCommand::List { status, config, limit, cursor, json: as_json } => {
                let mut filter = ListRuns::default();
                if let Some(workspace) = context.workspace.clone() {
                    filter = filter.workspace(workspace);
                }
                if let Some(text) = status {
                    let status: RunStatus = serde_json::from_value(serde_json::Value::String(text.clone()))
                        .map_err(|_| {
                            Failure::Usage(format!(
                                "--status {text:?} is not a run status (queued, building, running, succeeded, failed, cancelled)"
                            ))
                        })?;
                    filter = filter.status(status);
                }
                if let Some(text) = config {
                    filter = filter.configuration(configuration_id(&text, "--config")?);
                }
                if let Some(limit) = limit {
                    filter = filter.limit(limit);
                }
                if let Some(cursor) = cursor {
                    filter = filter.cursor(cursor);
                }
                let page = client.list_runs(&filter).await?;
                if as_json {
                    say!("{}", json(&serde_json::json!({ "runs": page.runs, "next_cursor": page.next_cursor })));
                    return done();
                }
                for run in &page.runs {
                    say!("{}  {:<9}  {}  {}", run.id, run.status.as_str(), run.configuration_id, run.created_at);
                }
                if page.runs.is_empty() {
                    note!("no runs");
                }
                if let Some(cursor) = page.next_cursor {
                    note!("more: {} runs list --cursor {cursor}", context.again());
                }
                done()
            }
            RunsCommand::Get { run } => {
                say!("{}", json(&client.get_run(run_id(&run)?).await?));
                done()
            }
            RunsCommand::Cancel { run } => {
                let run = client.cancel(run_id(&run)?).await?;
                say!("cancelling {} (was {})", run.id, run.status.as_str());
                done()
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
            done()
        }
        Command::Configurations { command } => configurations(context, command).await,
        Command::Webhooks { command } => webhooks::webhooks(context, command).await,
        Command::Outputs { run, name, output, json: as_json } => {
            let id = run_id(&run)?;
            let Some(name) = name else {
                let outputs = client.list_outputs(id).await?;
                if as_json {
                    say!("{}", json(&serde_json::json!({ "outputs": outputs })));
                } else if outputs.is_empty() {
                    note!("run {id} has no outputs");
                } else {
                    for output in &outputs {
                        say!(
                            "{:<32} {:>14}  {}",
                            output.name,
                            format!("{} B", thousands(output.byte_size)),
                            output.content_type
                        );
                    }
                }
                return done();
            };
            let to_stdout = output.as_deref().is_none_or(|path| path == Path::new("-"));
            if to_stdout && output.is_none() && std::io::stdout().is_terminal() {
                return Err(Failure::Usage(format!(
                    "not writing output {name:?} to a terminal: pass -o FILE (or -o - to insist)"
                )));
            }
            let bytes = client.download_output(id, &name).await?;
            match output.filter(|_| !to_stdout) {
                Some(path) => {
                    tokio::fs::write(&path, &bytes)
                        .await
                        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
                    note!("wrote {} to {}", count(bytes.len() as u64, "byte"), path.display());
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    if let Err(error) = stdout.write_all(&bytes).and_then(|()| stdout.flush())
                        && error.kind() != std::io::ErrorKind::BrokenPipe
                    {
                        return Err(Failure::Usage(format!("cannot write to stdout: {error}")));
                    }
                }
            }
            done()
        }
    }
}

async fn configurations(context: &Context, command: ConfigurationsCommand) -> Result<Outcome, Failure> {
    let client = &context.client;
    match command {
        ConfigurationsCommand::List { json: as_json } => {
            let configurations = client.list_configurations().await?;
            if as_json {
                say!("{}", json(&serde_json::json!({ "configurations": configurations })));
            } else if configurations.is_empty() {
                note!("no configurations: {}", no_configurations_hint(context));
            } else {
                for configuration in &configurations {
                    say!(
                        "{:<24} {:<10} {:<8} {}",
                        configuration.id,
                        configuration.version,
                        configuration.engine.engine_name(),
                        configuration.description.as_deref().unwrap_or("")
                    );
                }
            }
        }
        ConfigurationsCommand::Show { id } => {
            let id = configuration_id(&id, "configuration")?;
            say!("{}", json(&known_configuration(context, &id).await?));
        }
        ConfigurationsCommand::Put { file } => {
            let configuration = load_configuration(&file)?;
            let put = put_configuration(context, &configuration, &file, true).await?;
            say!("configuration {} (version {}) put", put.id, put.version);
        }
    }
    Ok(Outcome::Exit(ExitCode::SUCCESS))
}

fn no_configurations_hint(context: &Context) -> &'static str {
    if context.embedded.is_some() {
        "pass --config-dir DIR, or put one with `ade configurations put FILE`"
    } else {
        "start the server with --config-dir DIR, or put one with `ade configurations put FILE`"
    }
}

/// The configuration `id`; when unknown, an error that lists the known ones.
async fn known_configuration(context: &Context, id: &ConfigurationId) -> Result<Configuration, Failure> {
    match context.client.get_configuration(id).await {
        Ok(configuration) => Ok(configuration),
        Err(error) if error.status() == Some(404) => {
            let known = context.client.list_configurations().await?;
            let message = if known.is_empty() {
                format!("unknown configuration {id}; none are known: {}", no_configurations_hint(context))
            } else {
                let ids: Vec<&str> = known.iter().map(|c| c.id.as_str()).collect();
                format!("unknown configuration {id}; known: {}", ids.join(", "))
            };
            Err(Failure::Usage(message))
        }
        Err(error) => Err(error.into()),
    }
}

/// Whether `--config` names a file rather than an id.
fn is_file_argument(text: &str) -> bool {
    text.ends_with(".json")
        || text.contains(std::path::MAIN_SEPARATOR)
        || text.contains('/')
        || Path::new(text).is_file()
}

fn load_configuration(file: &Path) -> Result<Configuration, Failure> {
    Configuration::from_file(file).map_err(|e| Failure::Usage(e.to_string()))
}

/// Registers `configuration` (embedded) or puts it on the server. `keep`: embedded, also store
/// it in the data directory (as a server's PUT does), so later commands know it.
async fn put_configuration(
    context: &Context,
    configuration: &Configuration,
    file: &Path,
    keep: bool,
) -> Result<Configuration, Failure> {
    let client = &context.client;
    if context.embedded.is_none() {
        // The same configuration already there (from the server's directory, or put before):
        // nothing to change.
        if let Ok(existing) = client.get_configuration(&configuration.id).await
            && existing == *configuration
        {
            return Ok(existing);
        }
        if !matches!(configuration.engine, EngineSpec::Extract(_)) {
            return Err(Failure::Usage(format!(
                "{}: a server takes only `extract` configurations over HTTP (this one is `{}`): put the file in \
                 the server's --config-dir and pass --config {}",
                file.display(),
                configuration.engine.engine_name(),
                configuration.id
            )));
        }
        return client.put_configuration(configuration).await.map_err(|error| match error.problem() {
            Some(problem) => Failure::Usage(format!("cannot put {} on the server: {}", file.display(), problem.detail)),
            None => Failure::Client(error),
        });
    }
    let put = client.put_configuration(configuration).await.map_err(|error| match error.problem() {
        Some(problem) => Failure::Usage(format!("{}: {}", file.display(), problem.detail)),
        None => Failure::Client(error),
    })?;
    if keep {
        if !matches!(configuration.engine, EngineSpec::Extract(_)) {
            return Err(Failure::Usage(format!(
                "{}: only `extract` configurations are kept in the data directory (this one is `{}`): \
                 put the file in a --config-dir, or pass `--config {}` to `ade run`",
                file.display(),
                configuration.engine.engine_name(),
                file.display()
            )));
        }
        let dir = stored_configurations_dir(&context.target.data_dir);
        let failed = |e: std::io::Error| Failure::Usage(format!("cannot keep configuration in {}: {e}", dir.display()));
        tokio::fs::create_dir_all(&dir).await.map_err(failed)?;
        let text = serde_json::to_vec_pretty(&put).map_err(|e| Failure::Usage(e.to_string()))?;
        let temporary = dir.join(format!(".{}.json.tmp", put.id));
        tokio::fs::write(&temporary, text).await.map_err(failed)?;
        tokio::fs::rename(&temporary, dir.join(format!("{}.json", put.id))).await.map_err(failed)?;
    }
    Ok(put)
}

async fn upload(
    client: &Client,
    file: &Path,
    workspace: Option<&WorkspaceId>,
) -> Result<ade_client::core::store::Document, Failure> {
    let bytes =
        tokio::fs::read(file).await.map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "document".to_owned());
    Ok(client.upload_document(&name, bytes, workspace).await?)
}

struct RunArgs {
    files: Vec<PathBuf>,
    config: String,
    mode: Option<Mode>,
    json: bool,
    verbose: bool,
}

/// Ctrl-C presses, from a task that waits for them. On Unix the handler is installed before this
/// returns (`tokio::signal::ctrl_c` would install it only once first polled, and a Ctrl-C before
/// that would still kill the process).
fn interrupts() -> Result<mpsc::UnboundedReceiver<()>, Failure> {
    let (sender, receiver) = mpsc::unbounded_channel();
    #[cfg(unix)]
    {
        let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| Failure::Usage(format!("cannot handle ctrl-c: {e}")))?;
        tokio::spawn(async move {
            while signal.recv().await.is_some() {
                if sender.send(()).is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if sender.send(()).is_err() {
                break;
            }
        }
    });
    Ok(receiver)
}

async fn run(context: &Context, args: RunArgs) -> Result<Outcome, Failure> {
    let client = &context.client;
    // From here on Ctrl-C is ours: it cancels or leaves the run instead of killing the process.
    let mut interrupted = interrupts()?;
    let human = Human::new(args.json);
    let setup = async {
        let configuration = if is_file_argument(&args.config) {
            let path = PathBuf::from(&args.config);
            let configuration = load_configuration(&path)?;
            let put = put_configuration(context, &configuration, &path, false).await?;
            human.line(format!("configuration {} (version {}) from {}", put.id, put.version, path.display()));
            put.id
        } else {
            let id = configuration_id(&args.config, "--config")?;
            // An unknown configuration is refused before anything is uploaded.
            known_configuration(context, &id).await?;
            id
        };
        let mut request = NewRun::new(configuration);
        if let Some(workspace) = context.workspace.clone() {
            request = request.workspace(workspace);
        }
        if let Some(mode) = args.mode {
            request = request.mode(mode.into());
        }
        for file in &args.files {
            let document = upload(client, file, context.workspace.as_ref()).await?;
            human.line(format!("uploaded {} as {}", file.display(), document.id));
            request = request.document(document.id);
        }
        let run = client.create_run(&request).await?.into_run();
        human.line(format!("run {} created", run.id));
        Ok::<_, Failure>(run)
    };
    let run = tokio::select! {
        run = setup => run?,
        Some(()) = interrupted.recv() => {
            note!("interrupted: no run was created");
            return Ok(Outcome::Detached);
        }
    };
    let progress = Progress::new(&human, args.verbose);
    let followed = follow(context, &run, &progress, &mut interrupted, args.json).await;
    progress.finish();
    match followed? {
        Followed::Ended => {}
        Followed::Left => return Ok(Outcome::Detached),
    }
    let run = client.get_run(run.id).await?;
    print_summary(context, &human, &run).await;
    Ok(Outcome::Exit(if run.status == RunStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(1) }))
}

/// Where the human text goes: stdout, or stderr when stdout carries `--json`.
#[derive(Clone, Copy)]
enum Human {
    Stdout,
    Stderr,
}

impl Human {
    fn new(json: bool) -> Self {
        if json { Self::Stderr } else { Self::Stdout }
    }

    fn line(self, text: String) {
        match self {
            Self::Stdout => say!("{text}"),
            Self::Stderr => note!("{text}"),
        }
    }

    fn is_terminal(self) -> bool {
        match self {
            Self::Stdout => std::io::stdout().is_terminal(),
            Self::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// Where progress goes: a spinner with a status line on a terminal, plain lines otherwise.
struct Progress {
    human: Human,
    bar: Option<indicatif::ProgressBar>,
    verbose: bool,
    /// The last status printed as a plain line (not printed again unchanged).
    last: std::sync::Mutex<String>,
}

impl Progress {
    fn new(human: &Human, verbose: bool) -> Self {
        let human = *human;
        if !human.is_terminal() {
            return Self { human, bar: None, verbose, last: std::sync::Mutex::default() };
        }
        let target = match human {
            Human::Stdout => indicatif::ProgressDrawTarget::stdout(),
            Human::Stderr => indicatif::ProgressDrawTarget::stderr(),
        };
        let bar = indicatif::ProgressBar::with_draw_target(None, target);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed} {wide_msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self { human, bar: Some(bar), verbose, last: std::sync::Mutex::default() }
    }

    /// A line that stays (a table found, a console line, an error, the end).
    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| self.human.line(text)),
            None => self.human.line(text),
        }
    }

    /// The current state: the spinner's message, or a plain line.
    fn status(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None => {
                let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if *last != text {
                    self.human.line(text.clone());
                    *last = text;
                }
            }
        }
    }

    fn is_plain(&self) -> bool {
        self.bar.is_none()
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// How following a run ended.
enum Followed {
    /// At its `run.completed`.
    Ended,
    /// Ctrl-C left it going.
    Left,
}

/// The issues so far: the tables' aggregates (by table id, a repeated one replacing the earlier),
/// a `run.validation.summary` when one came (authoritative), and the issue events seen (capped
/// by the server's limit on published issues, so only a floor).
#[derive(Default)]
struct IssueCount {
    tables: BTreeMap<String, u64>,
    summary: Option<u64>,
    events: u64,
}

impl IssueCount {
    fn total(&self) -> u64 {
        let aggregated = self.summary.unwrap_or_else(|| self.tables.values().sum());
        aggregated.max(self.events)
    }

    fn summary(&mut self, aggregate: &ValidationAggregate) {
        self.summary = Some(aggregate.issues_total);
    }
}

/// Follows a run to its end, showing its phases, the tables found, the issues so far and the
/// engine's console lines; with `json`, each event as a line on stdout. Ctrl-C: see `Command::Run`.
async fn follow(
    context: &Context,
    run: &Run,
    progress: &Progress,
    interrupted: &mut mpsc::UnboundedReceiver<()>,
    json: bool,
) -> Result<Followed, Failure> {
    let client = &context.client;
    let id = run.id;
    let mut events = client.events(id, 0);
    let mut tables = 0u64;
    let mut issues = IssueCount::default();
    let mut phase = String::from("queued");
    let mut cancelling = false;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            Some(()) = interrupted.recv() => {
                if context.embedded.is_none() {
                    let again = context.again();
                    progress.finish();
                    note!("interrupted: run {id} goes on on the server");
                    note!("  follow it: {again} events {id} --follow");
                    note!("  cancel it: {again} runs cancel {id}");
                    return Ok(Followed::Left);
                }
                if cancelling {
                    progress.finish();
                    note!("detached: run {id} was left unfinished; the next ade on this data directory ends it");
                    return Ok(Followed::Left);
                }
                cancelling = true;
                match client.cancel(id).await {
                    Ok(_) => progress.line(format!("cancelling run {id} (ctrl-c again to leave at once)")),
                    // Already ended: its run.completed is on its way.
                    Err(error) if error.status() == Some(409) => {}
                    Err(error) => return Err(error.into()),
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        let event = event?;
        if json {
            match event.to_json() {
                Ok(line) => say!("{line}"),
                Err(error) => note!("ade: event {} cannot be shown: {error}", event.sequence),
            }
        }
        match &event.payload {
            EventPayload::BuildStarted(_) => phase = "build".to_owned(),
            EventPayload::BuildPhaseStarted(started) => phase = format!("build: {}", started.phase),
            EventPayload::BuildCompleted(_) => phase = "build: completed".to_owned(),
            EventPayload::RunStarted(_) => phase = "run: started".to_owned(),
            EventPayload::RunPhaseStarted(started) => phase = format!("run: {}", started.phase),
            EventPayload::RunTableSummary(table) => {
                tables += 1;
                issues.tables.insert(table.table_id.clone(), table.validation.issues_total);
                progress.line(format!(
                    "table {tables}: {} / {} — {}, {} mapped",
                    table.source_file,
                    table.source_sheet,
                    count(table.row_count, "row"),
                    count(table.mapped_field_count, "field")
                ));
            }
            EventPayload::RunValidationSummary(aggregate) => issues.summary(aggregate),
            EventPayload::RunValidationIssue(_) => {
                let before = issues.total();
                issues.events += 1;
                // Plain output shows the count as it doubles, not once per issue.
                let now = issues.total();
                if progress.is_plain() && (now == before || !now.is_power_of_two()) {
                    continue;
                }
            }
            EventPayload::ConsoleLine(line) => {
                let shown = match line.level {
                    ConsoleLevel::Warn => Some("warn: "),
                    ConsoleLevel::Error => Some("error: "),
                    _ if progress.verbose => Some(""),
                    _ => None,
                };
                if let Some(prefix) = shown {
                    progress.line(format!("  {prefix}{}", line.message));
                }
                continue;
            }
            EventPayload::RunError(_) => {
                progress.line(format!("error: {}", error_message(&event)));
                continue;
            }
            EventPayload::RunCompleted(done) => {
                progress.line(format!("run: completed ({})", wire(&done.status)));
                continue;
            }
            _ => continue,
        }
        progress.status(format!("{phase} · {} · issues so far {}", count(tables, "table"), thousands(issues.total())));
    }
    Ok(Followed::Ended)
}

/// How a value is spelt on the wire (an enumeration's `"succeeded"` without its quotes).
fn wire<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(error) => format!("(cannot show: {error})"),
    }
}

fn error_message(event: &Envelope) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v["payload"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no message)".to_owned())
}

fn print_event(event: &Envelope, ndjson: bool) {
    if ndjson {
        match event.to_json() {
            Ok(line) => say!("{line}"),
            Err(error) => note!("ade: event {} cannot be shown: {error}", event.sequence),
        }
        return;
    }
    let detail = match &event.payload {
        EventPayload::ConsoleLine(line) => line.message.clone(),
        EventPayload::RunPhaseStarted(phase) | EventPayload::BuildPhaseStarted(phase) => phase.phase.clone(),
        EventPayload::RunCompleted(done) => wire(&done.status),
        _ => String::new(),
    };
    say!("{:>5} {:<24} {detail}", event.sequence, event.event_type());
}

async fn print_summary(context: &Context, human: &Human, run: &Run) {
    let line = |text: String| human.line(text);
    line(String::new());
    line(format!("run {}: {}", run.id, run.status.as_str()));
    if let Some(failure) = &run.failure {
        line(format!("  failure: {} ({})", failure.message, failure.code));
    }
    if let Some(summary) = &run.summary {
        let core = &summary.core;
        if let Some(seconds) = summary.run.duration_seconds {
            line(format!("  duration: {seconds:.2} s"));
        }
        line(format!("  inputs: {}, {}", count(core.input_file_count, "file"), count(core.input_sheet_count, "sheet")));
        line(format!("  tables: {}, rows: {}", thousands(core.table_count), thousands(core.row_count)));
        line(format!(
            "  fields: {} of {} mapped ({} required), {}",
            thousands(core.mapped_field_count),
            thousands(core.canonical_field_count),
            thousands(core.required_field_count),
            count(core.unmapped_column_count, "unmapped column")
        ));
        line(format!("  issues: {}", thousands(core.validation_issue_count_total)));
        for (severity, n) in &core.issue_counts_by_severity {
            line(format!("    {}: {}", severity.as_str(), thousands(*n)));
        }
    }
    let outputs = outputs(context, run).await;
    if !outputs.is_empty() {
        line("  outputs:".to_owned());
        for output in outputs {
            line(format!("    {output}"));
        }
    }
}

/// Where the run's output files are: paths on disk when embedded, URLs on a server.
async fn outputs(context: &Context, run: &Run) -> Vec<String> {
    let Some(runtime) = &context.embedded else {
        return match context.client.list_outputs(run.id).await {
            Ok(outputs) => outputs.iter().map(|o| context.client.resolve(&o.href)).collect(),
            Err(_) => vec![context.client.resolve(&run.links.outputs)],
        };
    };
    let dir = runtime.run_dir(&run.workspace_id, run.id).join("outputs");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().display().to_string()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_separated_and_pluralized() {
        assert_eq!(count(1, "row"), "1 row");
        assert_eq!(count(12_000, "row"), "12,000 rows");
    }

    #[test]
    fn a_file_argument_is_told_from_an_id() {
        assert!(is_file_argument("members.json"));
        assert!(is_file_argument("config/members"));
        assert!(!is_file_argument("members"));
    }
}
