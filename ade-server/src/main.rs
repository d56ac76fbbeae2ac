//! The `ade-server` binary: the HTTP API of SPEC §4 over the embedded default runtime
//! (SQLite + NDJSON logs under `--data-dir`).
//!
//! ```sh
//! cargo run --release -p ade-server -- --config-dir examples/config
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ade_core::Runtime;
use ade_core::config::{Configuration, DEFAULT_MAX_FIELDS, EngineSpec};
use ade_core::engine::{MAX_CONSOLE_MESSAGE, MAX_PUBLISHED_ISSUES, MIN_CONSOLE_MESSAGE, SinkLimits};
use ade_core::store::Durability;
use ade_server::{CorsOrigins, PublicUrl, Server, ServerConfig, Tokens};
use clap::{Parser, ValueEnum};
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::EnvFilter;

/// Serve ade's HTTP API: runs, documents, configurations and event streams.
#[derive(Debug, Parser)]
#[command(name = "ade-server", version)]
struct Args {
    /// Where runs, event logs, documents and outputs are kept.
    #[arg(long, env = "ADE_DATA_DIR", default_value = "./ade-data")]
    data_dir: PathBuf,
    /// Keep runs and events in this PostgreSQL database (`postgres://user@host:port/db`) instead of
    /// the data directory's SQLite and NDJSON files, shared with every other instance on it. All
    /// instances must then share one data directory too (documents and outputs live there).
    #[arg(long, env = "ADE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Seconds a worker's claim on a run lasts without renewal; with a database, another instance
    /// ends the run of an instance that stopped renewing (`orchestrator_lost`) after this long.
    #[arg(long, env = "ADE_LEASE_SECS", default_value_t = 30.0, value_parser = parse_lease)]
    lease_secs: f64,
    /// Address to listen on.
    #[arg(long, env = "ADE_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory of configuration files (`*.json`) to load at start.
    #[arg(long, env = "ADE_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// A JSON file of bearer tokens: {"tokens": [{"name", "token", "workspaces": ["acme"] | ["*"]}]}.
    #[arg(long, env = "ADE_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// The same JSON as a tokens file, from the environment (ADE_TOKENS); prefer it to a flag,
    /// which other users of the machine can read.
    #[arg(long = "tokens-json", env = "ADE_TOKENS", hide_env_values = true)]
    tokens_json: Option<String>,
    /// Serve without tokens on an address that is not loopback.
    #[arg(long, env = "ADE_ALLOW_OPEN")]
    allow_open: bool,
    /// An origin (`scheme://host[:port]`) whose pages may call the API from a browser (CORS);
    /// repeat it, or list several separated by commas (ADE_CORS_ORIGINS). `*` alone allows any
    /// origin. Off by default.
    #[arg(long = "cors-origin", env = "ADE_CORS_ORIGINS", value_delimiter = ',', value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// The URL clients reach the server at (`https://example.com/ade`), when a proxy in front of
    /// it strips a prefix or changes the host: links in responses are then absolute URLs under it.
    /// By default they are paths under the request's own mount point.
    #[arg(long, env = "ADE_PUBLIC_URL", value_parser = parse_public_url, value_name = "URL")]
    public_url: Option<PublicUrl>,
    /// How many runs execute at once.
    #[arg(long, env = "ADE_WORKERS", default_value_t = 2)]
    workers: usize,
    /// Whether event batches are fsynced (`run.completed` always is).
    #[arg(long, env = "ADE_DURABILITY", value_enum, default_value_t = DurabilityArg::Buffered)]
    durability: DurabilityArg,
    /// Seconds without data after which an SSE stream gets a keepalive comment.
    #[arg(long, env = "ADE_KEEPALIVE_SECS", default_value_t = 15)]
    keepalive_secs: u64,
    /// Seconds a client has to send a request head before its connection is closed.
    #[arg(long, env = "ADE_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    header_timeout_secs: u64,
    /// Seconds a request body may go without data; after that long a body must also have arrived
    /// at 1 KiB/s on average. A body too slow is answered 408 and its connection closed (event
    /// streams and downloads are not affected).
    #[arg(long, env = "ADE_BODY_READ_TIMEOUT_SECS", default_value_t = 30)]
    body_read_timeout_secs: u64,
    /// Largest request head (request line and header fields), in bytes; larger is answered 431.
    #[arg(long, env = "ADE_MAX_HEAD_BYTES", default_value_t = 16 * 1024)]
    max_head_bytes: usize,
    /// Most header fields in a request; more are answered 431.
    #[arg(long, env = "ADE_MAX_HEADERS", default_value_t = 100)]
    max_headers: usize,
    /// Longest request target (path and query), in bytes; longer is answered 414.
    #[arg(long, env = "ADE_MAX_URI_BYTES", default_value_t = 8 * 1024)]
    max_uri_bytes: usize,
    /// Largest uploaded document, in bytes.
    #[arg(long, env = "ADE_MAX_UPLOAD_BYTES", default_value_t = ade_core::api::DEFAULT_MAX_UPLOAD)]
    max_upload_bytes: u64,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "ADE_MAX_JSON_BYTES", default_value_t = 1024 * 1024)]
    max_json_bytes: usize,
    /// Longest `console.line` message an engine may emit, in bytes (at least 64); longer ones are
    /// cut and marked `…[truncated N bytes]`.
    #[arg(long, env = "ADE_MAX_CONSOLE_MESSAGE_BYTES", default_value_t = MAX_CONSOLE_MESSAGE, value_parser = parse_console_limit)]
    max_console_message_bytes: usize,
    /// `run.validation.issue` events published per run; the rest are counted in one warning.
    #[arg(long, env = "ADE_MAX_VALIDATION_ISSUES", default_value_t = MAX_PUBLISHED_ISSUES)]
    max_validation_issues: u64,
    /// Most fields a configuration may have: `PUT /configurations/{id}` refuses more (422), and a
    /// configuration file with more stops the start. Keeps each run's summary within one event.
    #[arg(long, env = "ADE_MAX_CONFIGURATION_FIELDS", default_value_t = DEFAULT_MAX_FIELDS)]
    max_configuration_fields: usize,
    /// Seconds shutdown waits for executing runs before leaving them to recovery.
    #[arg(long, env = "ADE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    shutdown_grace_secs: u64,
    /// Seconds shutdown lets open connections (downloads, uploads, event streams whose reader
    /// stopped reading) finish before closing them; the runs' grace period comes after.
    #[arg(long, env = "ADE_SHUTDOWN_DRAIN_SECS", default_value_t = 10)]
    shutdown_drain_secs: u64,
    /// Let webhooks (`POST /webhooks`) target loopback, private and reserved addresses. Off by
    /// default: a token holder could otherwise make the server call services on its network.
    #[arg(long, env = "ADE_WEBHOOKS_ALLOW_PRIVATE")]
    webhooks_allow_private: bool,
    /// Seconds one webhook request may take.
    #[arg(long, env = "ADE_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    webhook_timeout_secs: u64,
    /// Seconds of nothing but failed deliveries after which a webhook is disabled (until
    /// `POST /webhooks/{id}/enable`, which resumes where delivery stopped).
    #[arg(long, env = "ADE_WEBHOOK_DISABLE_AFTER_SECS", default_value_t = 24 * 60 * 60)]
    webhook_disable_after_secs: u64,
    #[command(flatten)]
    nats: NatsArgs,
}

/// The NATS JetStream exporter (crate ade-nats), kept apart from the other flags.
#[derive(Debug, clap::Args)]
struct NatsArgs {
    /// Publish every persisted event of every run to this NATS server's JetStream
    /// (`nats://host:4222`), at least once and in order per run, to the subjects
    /// `<prefix>.<workspace>.runs.<run_id>.events`. Off by default.
    #[arg(long, env = "ADE_NATS_URL", hide_env_values = true, value_name = "URL")]
    nats_url: Option<String>,
    /// The JetStream stream the events go to, created if missing.
    #[arg(long, env = "ADE_NATS_STREAM", default_value = "ADE_EVENTS", value_name = "NAME")]
    nats_stream: String,
    /// The first token(s) of the events' subjects.
    #[arg(long, env = "ADE_NATS_SUBJECT_PREFIX", default_value = "ade", value_name = "PREFIX")]
    nats_subject_prefix: String,
    /// What to do when the server's max_payload cannot carry ade's largest event (1 MiB and
    /// headers): refuse to start, or publish a small stand-in for each event that does not fit.
    #[arg(long, env = "ADE_NATS_OVERSIZE", value_enum, default_value_t = OversizeArg::Refuse)]
    nats_oversize: OversizeArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OversizeArg {
    /// Refuse to start.
    Refuse,
    /// Publish a stand-in (header `Ade-Event-Omitted`) for each event that does not fit.
    Stub,
}

/// The JetStream exporter the flags ask for, if any.
async fn nats_exporter(args: &NatsArgs) -> Result<Option<std::sync::Arc<ade_nats::JetStreamExporter>>, String> {
    let Some(url) = &args.nats_url else { return Ok(None) };
    let options = ade_nats::JetStreamOptions::default()
        .with_stream(args.nats_stream.clone())
        .with_subject_prefix(args.nats_subject_prefix.clone())
        .with_oversize(match args.nats_oversize {
            OversizeArg::Refuse => ade_nats::Oversize::Refuse,
            OversizeArg::Stub => ade_nats::Oversize::Stub,
        });
    let exporter = ade_nats::JetStreamExporter::connect(url, options).await.map_err(|e| e.to_string())?;
    tracing::info!(stream = %args.nats_stream, max_payload = exporter.max_payload(), "events are exported to NATS JetStream");
    Ok(Some(std::sync::Arc::new(exporter)))
}

/// A lease of 0.1 s to one day.
fn parse_lease(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.1..=86_400.0).contains(&secs) => Ok(secs),
        _ => Err(format!("{text:?} is not a number of seconds from 0.1 to 86400")),
    }
}

fn parse_public_url(text: &str) -> Result<PublicUrl, String> {
    PublicUrl::parse(text).map_err(|e| e.to_string())
}

/// A console message limit with room for the `…[truncated N bytes]` marker.
fn parse_console_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(bytes) if bytes >= MIN_CONSOLE_MESSAGE => Ok(bytes),
        _ => Err(format!("{text:?} is not a number of bytes of at least {MIN_CONSOLE_MESSAGE}")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// Written to the operating system per batch.
    Buffered,
    /// Fsynced per batch.
    Fsync,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,ade_server=info,tower_http=info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    #[cfg(unix)]
    raise_open_files_limit();
    // File reads (event replays, uploads) are short: a bounded blocking pool keeps thousands of
    // subscribers connecting at once from starting hundreds of threads, each with its own stack
    // and allocator arena.
    let runtime = match tokio::runtime::Builder::new_multi_thread().max_blocking_threads(64).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let tokens = match (&args.tokens_file, &args.tokens_json) {
        (Some(_), Some(_)) => return Err("give tokens in a file or in ADE_TOKENS, not both".to_owned()),
        (Some(path), None) => Tokens::from_file(path).map_err(|e| e.to_string())?,
        (None, Some(json)) => Tokens::from_json(json).map_err(|e| e.to_string())?,
        (None, None) => Tokens::none(),
    };
    let cors = CorsOrigins::parse(&args.cors_origins).map_err(|e| e.to_string())?;
    let metrics = PrometheusBuilder::new()
        .set_buckets(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0])
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let builder = Runtime::builder();
    #[cfg(feature = "extract")]
    let builder = ade_extract::register(builder);
    let mut builder = builder
        .data_dir(&args.data_dir)
        .workers(args.workers)
        .lease(Duration::from_secs_f64(args.lease_secs))
        .max_configuration_fields(args.max_configuration_fields)
        .sink_limits(
            SinkLimits::default()
                .with_max_console_message(args.max_console_message_bytes)
                .with_max_published_issues(args.max_validation_issues),
        )
        .durability(match args.durability {
            DurabilityArg::Buffered => Durability::Buffered,
            DurabilityArg::Fsync => Durability::Fsync,
        });
    if let Some(url) = &args.database_url {
        builder = builder.backend(ade_postgres::connect(url).await.map_err(|e| e.to_string())?);
    }
    let mut directory_ids = Vec::new();
    if let Some(dir) = &args.config_dir {
        let loaded = Configuration::load_dir(dir, args.max_configuration_fields).map_err(|e| e.to_string())?;
        directory_ids = loaded.iter().map(|c| c.id.clone()).collect();
        tracing::info!(dir = %dir.display(), count = loaded.len(), "configurations loaded");
        builder = builder.configurations_dir(dir);
    }
    // Configurations created with PUT /configurations/{id} live in the data directory.
    let stored_dir = ade_server::routes::stored_configurations_dir(&args.data_dir);
    if stored_dir.is_dir() {
        for configuration in
            Configuration::load_dir(&stored_dir, args.max_configuration_fields).map_err(|e| e.to_string())?
        {
            if directory_ids.contains(&configuration.id) {
                tracing::warn!(id = %configuration.id, "a stored configuration is shadowed by the configuration directory; skipped");
                continue;
            }
            if !matches!(configuration.engine, EngineSpec::Extract(_)) {
                tracing::warn!(id = %configuration.id, "a stored configuration is not an `extract` one; skipped");
                continue;
            }
            builder = builder.configuration(configuration);
        }
    }
    if let Some(exporter) = nats_exporter(&args.nats).await? {
        builder = builder.exporter(exporter);
    }
    let runtime = builder.build().await.map_err(|e| e.to_string())?;
    if tokens.is_empty() {
        tracing::warn!("no tokens configured: the server is open to anyone who can reach it");
    }
    let mut config = ServerConfig::new()
        .with_tokens(tokens)
        .with_allow_open(args.allow_open)
        .with_keepalive(Duration::from_secs(args.keepalive_secs.max(1)))
        .with_header_read_timeout(Duration::from_secs(args.header_timeout_secs.max(1)))
        .with_body_read_timeout(Duration::from_secs(args.body_read_timeout_secs.max(1)))
        .with_max_head_bytes(args.max_head_bytes)
        .with_max_headers(args.max_headers)
        .with_max_uri_bytes(args.max_uri_bytes)
        .with_max_upload(args.max_upload_bytes)
        .with_max_json_body(args.max_json_bytes)
        .with_shutdown_grace(Duration::from_secs(args.shutdown_grace_secs))
        .with_shutdown_drain(Duration::from_secs(args.shutdown_drain_secs))
        .with_metrics(metrics)
        .with_webhooks(
            ade_webhooks::WebhookOptions::default()
                .with_private_targets(args.webhooks_allow_private)
                .with_timeout(Duration::from_secs(args.webhook_timeout_secs.max(1)))
                .with_disable_after(Duration::from_secs(args.webhook_disable_after_secs)),
        );
    if let Some(origins) = cors {
        tracing::info!(origins = ?origins.origins(), any = origins.is_any(), "CORS enabled");
        config = config.with_cors(origins);
    }
    if let Some(url) = args.public_url {
        config = config.with_public_url(url);
    }
    let server = Server::bind(args.bind, runtime, config).await.map_err(|e| e.to_string())?;
    // Listening for signals before saying so: a SIGTERM sent the moment the address is announced
    // must stop the server gracefully, not kill it with the default action.
    let signal = shutdown_signal();
    println!("ade-server listening on http://{}", server.local_addr());
    server.run(signal).await.map_err(|e| e.to_string())
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime does for every program:
/// each SSE subscriber is a socket (and, while it catches up, briefly its run's log), and the
/// usual soft limit of 1,024 would stop a server at about that many subscribers.
#[cfg(unix)]
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "open files limit raised"),
            Err(error) => tracing::warn!(%error, soft, hard, "cannot raise the open files limit"),
        },
        Ok((soft, _)) => tracing::info!(limit = soft, "open files limit"),
        Err(error) => tracing::warn!(%error, "cannot read the open files limit"),
    }
}

/// SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| {
            let listener = signal(kind);
            async move {
                match listener {
                    Ok(mut listener) => {
                        listener.recv().await;
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        (listen(SignalKind::interrupt(), "SIGINT"), listen(SignalKind::terminate(), "SIGTERM"))
    };
    #[cfg(not(unix))]
    let (interrupt, terminate) = (
        async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        },
        std::future::pending::<()>(),
    );
    async move {
        tokio::select! {
            () = interrupt => tracing::info!("SIGINT: shutting down"),
            () = terminate => tracing::info!("SIGTERM: shutting down"),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn engine_limits_default_to_the_spec_and_refuse_a_console_limit_without_room_for_the_marker() {
        let args = Args::try_parse_from(["ade-server"]).expect("defaults");
        assert_eq!((args.max_console_message_bytes, args.max_validation_issues), (16 * 1024, 10_000));
        assert_eq!(args.max_configuration_fields, 1_000);
        let args =
            Args::try_parse_from(["ade-server", "--max-console-message-bytes", "64", "--max-validation-issues", "0"])
                .expect("settings");
        assert_eq!((args.max_console_message_bytes, args.max_validation_issues), (64, 0));
        let error = Args::try_parse_from(["ade-server", "--max-console-message-bytes", "63"]).expect_err("too small");
        assert!(error.to_string().contains("at least 64"), "{error}");
    }

    #[test]
    fn nats_export_is_off_by_default_and_takes_a_stream_a_prefix_and_an_oversize_policy() {
        let args = Args::try_parse_from(["ade-server"]).expect("defaults");
        assert!(args.nats.nats_url.is_none());
        assert_eq!((args.nats.nats_stream.as_str(), args.nats.nats_subject_prefix.as_str()), ("ADE_EVENTS", "ade"));
        assert!(matches!(args.nats.nats_oversize, OversizeArg::Refuse));
        let args = Args::try_parse_from([
            "ade-server",
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--nats-stream",
            "RUNS",
            "--nats-oversize",
            "stub",
        ])
        .expect("settings");
        assert_eq!(args.nats.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert_eq!(args.nats.nats_stream, "RUNS");
        assert!(matches!(args.nats.nats_oversize, OversizeArg::Stub));
    }
}
