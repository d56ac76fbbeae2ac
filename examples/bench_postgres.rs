//! The PostgreSQL store: events appended per second, and the delivery latency from an append on
//! one instance to an SSE client of another.
//!
//! ```sh
//! cargo run --release --example bench_postgres -- --database-url postgres://postgres@127.0.0.1:5432/test
//! cargo run --release --example bench_postgres -- --quick
//! ```
//!
//! Everything happens in a schema of its own (`ade_bench_<ulid>`), created at the start and
//! dropped at the end, also on error; connections use it through the URL
//! (`?options[search_path]=<schema>&application_name=<schema>`).
//!
//! 1. **Append throughput** (in this process): a [`Dispatcher`] over a [`PgEventStore`] (default
//!    options: group commit, batches of at most 512, `synchronous_commit` off except for
//!    `run.completed`); `--runs` runs' writers emit `--events` console lines each at once; events/s
//!    from the first `emit` until every writer's last `flush` is acknowledged, median of
//!    `--repeats`. Then the same number of events straight through `PgEventStore::append` in
//!    batches of 512 (no dispatcher), one task per run.
//! 2. **Cross-instance latency**: this program again, twice, as child processes (`--serve-as a`,
//!    `--serve-as b`): two `ade_server::Server`s on 127.0.0.1 over the same schema and one temporary
//!    data directory. Only A knows the `bench` configuration, whose engine waits for `SIGUSR1` and
//!    then emits `--rate` events per second for `--seconds` seconds. The run is created on A and
//!    is `running` there before B starts, so A executes it. One SSE client follows the run on B
//!    (the measured figure) and one on A (the same-instance baseline); an in-process subscriber
//!    inside each instance (`Runtime::subscribe`, no HTTP) shows what the SSE layer adds. Latency
//!    of an event = receipt time − the event's `created_at` (same machine, same clock), for the
//!    events created after the signal; every subscriber checks it gets every event exactly once,
//!    in order, to `run.completed` (`lost` counts what any of them missed).
//!
//! The last line is one JSON object: `{"append_events_per_sec", "cross_instance_p50_ms",
//! "cross_instance_p99_ms", …}` (more keys after those three).

use std::io::{BufRead, BufReader, Write};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ade::Runtime;
use ade::config::Configuration;
use ade::dispatch::{DispatchOptions, Dispatcher, RunContext};
use ade::event::{EventSource, RunId, StoredEvent};
use ade::postgres::PgEventStore;
use ade::server::{Server, ServerConfig};
use ade::store::{Durability, EventStore, EventStream, LogTail, RunKey};
use clap::Parser;
use futures::StreamExt;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::Notify;

// No global allocator: the servers run with the system allocator, like the `ade-server` binary.

mod common;

use common::reader::{self, Seen, Target};
use common::{BoxError, BusyEngine, START, completed, console, ids, spawn_listening, stored};

#[derive(Debug, Parser)]
#[command(about = "Events/s appended to PostgreSQL, and cross-instance SSE delivery latency")]
struct Args {
    /// The database (a schema `ade_bench_<ulid>` is created in it, and dropped at the end).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    /// A short run: 8 × 2,500 events, one repetition, 3 seconds of latency.
    #[arg(long)]
    quick: bool,
    /// Append part: runs written concurrently.
    #[arg(long, default_value_t = 8)]
    runs: usize,
    /// Append part: events per run (the last one `run.completed`).
    #[arg(long, default_value_t = 25_000)]
    events: u64,
    /// Append part: repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Latency part: events per second the run on instance A emits.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Latency part: how long it emits.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Workers of each instance.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Internal: be instance A or B (child process); `--database-url` is then the schema's URL.
    #[arg(long, hide = true, value_enum)]
    serve_as: Option<Role>,
    /// Internal: the instances' shared data directory.
    #[arg(long, hide = true)]
    data_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    /// Knows the `bench` configuration and executes its run.
    A,
    /// Knows no configuration: only serves subscribers.
    B,
}

fn main() -> Result<(), BoxError> {
    let mut args = Args::parse();
    if args.quick {
        (args.events, args.repeats, args.seconds) = (2_500, 1, 3);
    }
    // As the `ade-server` binary builds its runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread().max_blocking_threads(64).enable_all().build()?;
    match args.serve_as {
        Some(role) => runtime.block_on(serve(args, role)),
        None => runtime.block_on(drive(args)),
    }
}

// ---------------------------------------------------------------------------------------------
// The instances (child processes).

async fn serve(args: Args, role: Role) -> Result<(), BoxError> {
    let data_dir = args.data_dir.clone().ok_or("--serve-as needs --data-dir")?;
    let backend = ade::postgres::connect(&args.database_url).await?;
    let mut builder = Runtime::builder().backend(backend).data_dir(data_dir).workers(args.workers);
    if role == Role::A {
        let configuration: Configuration =
            serde_json::from_value(serde_json::json!({ "id": "bench", "version": "1", "engine": "bench" }))?;
        builder = builder
            .engine("bench", Arc::new(BusyEngine { name: "bench", rate: args.rate, seconds: args.seconds }), None)
            .configuration(configuration);
    }
    let runtime = builder.build().await?;
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            START.notify_waiters();
        }
    });
    // Serve until the parent closes our stdin (or dies); `follow <run id>` lines on stdin start an
    // in-process subscriber of that run.
    let (follow, mut to_follow) = tokio::sync::mpsc::unbounded_channel::<String>();
    let parent_gone = async move {
        let _ = tokio::task::spawn_blocking(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("follow ") {
                    let _ = follow.send(id.to_owned());
                }
            }
        })
        .await;
    };
    let follower = runtime.clone();
    tokio::spawn(async move {
        while let Some(id) = to_follow.recv().await {
            let runtime = follower.clone();
            tokio::spawn(async move {
                let report = match follow_in_process(&runtime, &id).await {
                    Ok(report) => report,
                    Err(error) => serde_json::json!({ "error": error.to_string() }),
                };
                println!("in-process {report}");
                let _ = std::io::stdout().flush();
            });
        }
    });
    let listening = |addr: std::net::SocketAddr| {
        println!("listening http://{addr}");
        std::io::stdout().flush()
    };
    let server = Server::bind("127.0.0.1:0".parse()?, runtime, ServerConfig::new()).await?;
    listening(server.local_addr())?;
    server.run(parent_gone).await?;
    Ok(())
}

/// Follows run `id` through the runtime itself (no HTTP): says `following` once subscribed, and
/// returns what it saw of the events created after that.
async fn follow_in_process(runtime: &Runtime, id: &str) -> Result<serde_json::Value, BoxError> {
    let events = runtime.subscribe(None, id.parse()?, ade::dispatch::After(0)).await?;
    let since = reader::now_micros();
    println!("following");
    std::io::stdout().flush()?;
    let mut seen = Seen::new();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let event = event?;
        seen.count(event.sequence(), event.json(), reader::now_micros(), since);
    }
    let completed = seen.completed_at.ok_or("the stream ended before run.completed")?;
    Ok(serde_json::json!({
        "events": completed,
        "lost": completed.saturating_sub(seen.in_order),
        "wrong": seen.wrong,
        "p50_ms": seen.latencies.quantile_ms(0.50),
        "p99_ms": seen.latencies.quantile_ms(0.99),
        "max_ms": seen.max_latency_us as f64 / 1000.0,
    }))
}

// ---------------------------------------------------------------------------------------------
// The schema.

/// A schema of its own in the database; dropped (with everything in it) when this is dropped.
struct BenchSchema {
    /// The database's URL, as given.
    base_url: String,
    name: String,
}

impl BenchSchema {
    async fn create(base_url: &str) -> Result<Self, BoxError> {
        let name = format!("ade_bench_{}", ulid::Ulid::generate().to_string().to_lowercase());
        let mut conn = PgConnection::connect(base_url)
            .await
            .map_err(|e| format!("cannot connect to {base_url} (see --database-url): {e}"))?;
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut conn).await?;
        conn.close().await?;
        Ok(Self { base_url: base_url.to_owned(), name })
    }

    /// A URL whose connections use the schema (and are named after it, so they can be ended).
    fn url(&self) -> String {
        let separator = if self.base_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options[search_path]={name}&application_name={name}", self.base_url, name = self.name)
    }
}

impl Drop for BenchSchema {
    fn drop(&mut self) {
        let (url, name) = (self.base_url.clone(), self.name.clone());
        // Drop runs outside async: clean up on a thread with its own runtime and connection.
        let cleanup = std::thread::spawn(move || -> Result<(), BoxError> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await?;
                // Connections left behind (a child that did not exit) would hold locks.
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
                    .bind(&name)
                    .execute(&mut conn)
                    .await?;
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE"))).execute(&mut conn).await?;
                conn.close().await?;
                Ok(())
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => eprintln!("dropped schema {}", self.name),
            Ok(Err(error)) => eprintln!("could not drop schema {}: {error}", self.name),
            Err(_) => eprintln!("could not drop schema {}: the cleanup panicked", self.name),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: append throughput.

/// A [`PgEventStore`] that counts its appends (how big the dispatcher's batches are).
#[derive(Debug)]
struct Counting {
    store: PgEventStore,
    appends: AtomicU64,
    events: AtomicU64,
    micros: AtomicU64,
}

impl Counting {
    fn new(store: PgEventStore) -> Self {
        Self { store, appends: AtomicU64::new(0), events: AtomicU64::new(0), micros: AtomicU64::new(0) }
    }

    /// (appends, events, microseconds spent in them) so far.
    fn counts(&self) -> (u64, u64, u64) {
        (self.appends.load(Ordering::Relaxed), self.events.load(Ordering::Relaxed), self.micros.load(Ordering::Relaxed))
    }
}

#[async_trait::async_trait]
impl EventStore for Counting {
    async fn append(&self, run: &RunKey, events: &[Arc<StoredEvent>], durability: Durability) -> ade::Result<()> {
        let started = Instant::now();
        let result = self.store.append(run, events, durability).await;
        self.micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events.len() as u64, Ordering::Relaxed);
        result
    }

    async fn read_after(&self, run: &RunKey, after: u64) -> ade::Result<EventStream> {
        self.store.read_after(run, after).await
    }

    async fn tail(&self, run: &RunKey) -> ade::Result<LogTail> {
        self.store.tail(run).await
    }
}

/// What one dispatcher round measured.
struct DispatchRound {
    events_per_sec: f64,
    appends: u64,
    appended: u64,
    append_micros: u64,
}

/// `runs` writers of one dispatcher emit `events` events each (the last `run.completed`) as fast
/// as they can; events/s from the first emit until every writer's last flush returned.
async fn dispatcher_round(store: &Arc<Counting>, runs: usize, events: u64) -> Result<DispatchRound, BoxError> {
    let dispatcher = Dispatcher::new(store.clone(), DispatchOptions::default());
    let (workspace, configuration) = ids()?;
    let mut writers = Vec::with_capacity(runs);
    for _ in 0..runs {
        let context = RunContext::new(workspace.clone(), configuration.clone(), RunId::new());
        writers.push(dispatcher.open_run(context).await?);
    }
    let (appends_before, appended_before, micros_before) = store.counts();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(runs);
    for writer in writers {
        let configuration = configuration.clone();
        tasks.push(tokio::spawn(async move {
            for i in 1..events {
                writer.emit(EventSource::Engine, console(i)).await?;
            }
            writer.emit(EventSource::Api, completed(writer.key(), &configuration, events)).await?;
            writer.flush().await?;
            Ok::<_, ade::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (appends, appended, micros) = store.counts();
    Ok(DispatchRound {
        events_per_sec: (runs as u64 * events) as f64 / elapsed,
        appends: appends - appends_before,
        appended: appended - appended_before,
        append_micros: micros - micros_before,
    })
}

/// `runs` tasks append `events` console lines each straight to the store, in batches of `batch`.
async fn raw_append_round(store: &PgEventStore, runs: usize, events: u64, batch: usize) -> Result<f64, BoxError> {
    let (workspace, configuration) = ids()?;
    let mut logs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let key = RunKey::new(workspace.clone(), RunId::new());
        let mut batches = Vec::new();
        let mut current = Vec::with_capacity(batch);
        for sequence in 1..=events {
            current.push(stored(&key, &configuration, sequence, console(sequence))?);
            if current.len() == batch {
                batches.push(std::mem::replace(&mut current, Vec::with_capacity(batch)));
            }
        }
        if !current.is_empty() {
            batches.push(current);
        }
        logs.push((key, batches));
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(runs);
    for (key, batches) in logs {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for batch in &batches {
                store.append(&key, batch, Durability::Buffered).await?;
            }
            Ok::<_, ade::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok((runs as u64 * events) as f64 / started.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Part 1: the median dispatcher and raw append rates.
async fn append_part(args: &Args, url: &str) -> Result<(f64, f64, f64), BoxError> {
    let store = PgEventStore::connect(url).await?;
    let counting = Arc::new(Counting::new(store.clone()));
    let (mut rates, mut raw_rates, mut batch_sizes) = (Vec::new(), Vec::new(), Vec::new());
    for repeat in 1..=args.repeats {
        let round = dispatcher_round(&counting, args.runs, args.events).await?;
        let mean_batch = round.appended as f64 / round.appends.max(1) as f64;
        let mean_append_ms = round.append_micros as f64 / round.appends.max(1) as f64 / 1000.0;
        println!(
            "append #{repeat}: dispatcher, {} runs × {} events: {:.0} events/s ({} appends, {mean_batch:.0} events \
             each, {mean_append_ms:.1} ms each)",
            args.runs, args.events, round.events_per_sec, round.appends
        );
        rates.push(round.events_per_sec);
        batch_sizes.push(mean_batch);
        let raw = raw_append_round(&store, args.runs, args.events, DispatchOptions::default().max_batch).await?;
        println!(
            "append #{repeat}: PgEventStore::append, {} runs × {} events in batches of {}: {raw:.0} events/s",
            args.runs,
            args.events,
            DispatchOptions::default().max_batch
        );
        raw_rates.push(raw);
    }
    store.pool().close().await;
    Ok((median(rates), median(raw_rates), median(batch_sizes)))
}

// ---------------------------------------------------------------------------------------------
// Part 2: cross-instance latency.

/// A child instance; stopped when dropped.
struct Instance {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    url: String,
}

impl Instance {
    fn start(args: &Args, role: Role, database_url: &str, data_dir: &std::path::Path) -> Result<Self, BoxError> {
        let role = match role {
            Role::A => "a",
            Role::B => "b",
        };
        let (child, stdout, url) = spawn_listening(|command| {
            command
                .args(["--serve-as", role, "--database-url", database_url])
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--rate", &args.rate.to_string(), "--seconds", &args.seconds.to_string()])
                .args(["--workers", &args.workers.to_string()]);
        })
        .map_err(|e| format!("instance {role}: {e}"))?;
        Ok(Self { url, stdout, child })
    }

    /// The next line the instance says that starts with `prefix`, without it.
    fn line_starting(&mut self, prefix: &str) -> Result<String, BoxError> {
        tokio::task::block_in_place(|| {
            let mut line = String::new();
            loop {
                line.clear();
                if self.stdout.read_line(&mut line)? == 0 {
                    return Err(format!("the instance ended without saying {prefix:?}").into());
                }
                if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                    return Ok(rest.to_owned());
                }
            }
        })
    }

    /// Starts an in-process subscriber of `run_id` in the instance, and waits until it follows.
    fn follow_in_process(&mut self, run_id: &str) -> Result<(), BoxError> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "follow {run_id}")?;
        stdin.flush()?;
        self.line_starting("following")?;
        Ok(())
    }

    /// What the in-process subscriber saw, once the run completed.
    fn in_process_report(&mut self) -> Result<serde_json::Value, BoxError> {
        let report: serde_json::Value = serde_json::from_str(&self.line_starting("in-process ")?)?;
        if let Some(error) = report.get("error") {
            return Err(format!("in-process subscriber: {error}").into());
        }
        Ok(report)
    }

    fn signal_start(&self) -> Result<(), BoxError> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1)?;
        Ok(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A quantile for humans.
fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// Creates the `bench` run on `url` and waits until it is `running` there.
async fn create_running_run(client: &reqwest::Client, url: &str) -> Result<String, BoxError> {
    let response = client
        .post(format!("{url}/runs"))
        .json(&serde_json::json!({ "configuration_id": "bench", "document_ids": [] }))
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("POST /runs: {} {}", response.status(), response.text().await?).into());
    }
    let run: serde_json::Value = response.json().await?;
    let id = run["id"].as_str().ok_or("POST /runs gave no run id")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run: serde_json::Value =
            client.get(format!("{url}/runs/{id}")).send().await?.error_for_status()?.json().await?;
        match run["status"].as_str() {
            Some("running") => return Ok(id),
            Some("queued" | "building") if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            status => return Err(format!("run {id} is {status:?}, not running").into()),
        }
    }
}

/// What the latency part measured.
struct Latency {
    events: u64,
    lost: u64,
    wrong: u64,
    cross: Seen,
    same: Seen,
    /// What in-process subscribers of A and B saw (`p50_ms`, `p99_ms`, `max_ms`).
    in_a: serde_json::Value,
    in_b: serde_json::Value,
}

/// Part 2: instance A executes the run, clients follow it on B (and on A).
async fn latency_part(args: &Args, url: &str) -> Result<Latency, BoxError> {
    let data_dir = tempfile::tempdir()?;
    let mut a = Instance::start(args, Role::A, url, data_dir.path())?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let run_id = create_running_run(&client, &a.url).await?;
    // B starts only now: the run is already claimed and running on A.
    let mut b = Instance::start(args, Role::B, url, data_dir.path())?;
    println!("instance A {} executes run {run_id}; instance B {} serves the measured client", a.url, b.url);
    // Events count as live from the start signal on.
    let live_from = Arc::new(AtomicU64::new(u64::MAX));
    let mut followers = Vec::new();
    for instance in [&b, &a] {
        let connected = Arc::new(Notify::new());
        let target = Target {
            address: instance.url.trim_start_matches("http://").to_owned(),
            path: format!("/runs/{run_id}/events"),
            token: None,
        };
        let (live_from, on_head) = (live_from.clone(), connected.clone());
        let task = tokio::spawn(async move { reader::follow(&target, &live_from, || on_head.notify_one()).await });
        followers.push((task, connected));
    }
    for (_, connected) in &followers {
        tokio::time::timeout(Duration::from_secs(30), connected.notified())
            .await
            .map_err(|_| "an SSE client got no response head within 30 s")?;
    }
    // Subscribers inside both instances too: the latency without HTTP.
    a.follow_in_process(&run_id)?;
    b.follow_in_process(&run_id)?;
    live_from.store(reader::now_micros(), Ordering::SeqCst);
    a.signal_start()?;
    let timeout = Duration::from_secs(args.seconds + 60);
    let mut seens = Vec::new();
    for (task, _) in followers {
        let seen = tokio::time::timeout(timeout, task).await.map_err(|_| "an SSE client did not see the run end")??;
        if let Some(error) = &seen.error {
            return Err(format!("an SSE client failed: {error}").into());
        }
        seens.push(seen);
    }
    let in_a = a.in_process_report()?;
    let in_b = b.in_process_report()?;
    drop(b);
    drop(a);
    let same = seens.pop().ok_or("no client on A")?;
    let cross = seens.pop().ok_or("no client on B")?;
    let events = cross.completed_at.max(same.completed_at).ok_or("no client saw run.completed")?;
    let mut lost = events.saturating_sub(cross.in_order) + events.saturating_sub(same.in_order);
    let mut wrong = cross.wrong + same.wrong;
    for report in [&in_a, &in_b] {
        lost += report["lost"].as_u64().ok_or("no lost in a report")?;
        wrong += report["wrong"].as_u64().ok_or("no wrong in a report")?;
    }
    Ok(Latency { events, lost, wrong, cross, same, in_a, in_b })
}

// ---------------------------------------------------------------------------------------------

async fn drive(args: Args) -> Result<(), BoxError> {
    let schema = BenchSchema::create(&args.database_url).await?;
    println!("schema {}", schema.name);
    let url = schema.url();
    // `schema` is dropped (and the schema with it) after this, whether it failed or not.
    let result = measure(&args, &url).await;
    drop(schema);
    result
}

async fn measure(args: &Args, url: &str) -> Result<(), BoxError> {
    let (append, raw_append, mean_batch) = append_part(args, url).await?;
    println!(
        "append: median {append:.0} events/s through the dispatcher (mean batch {mean_batch:.0}), {raw_append:.0} \
         events/s through PgEventStore::append"
    );
    let latency = latency_part(args, url).await?;
    let (cross_p50, cross_p99) = (latency.cross.latencies.quantile_ms(0.50), latency.cross.latencies.quantile_ms(0.99));
    let (same_p50, same_p99) = (latency.same.latencies.quantile_ms(0.50), latency.same.latencies.quantile_ms(0.99));
    println!(
        "latency: {} events of one run ({} ev/s for {} s): lost {}, out of order {}",
        latency.events, args.rate, args.seconds, latency.lost, latency.wrong
    );
    println!(
        "latency: A → client of B p50 {} ms, p99 {} ms, max {:.1} ms ({} live events)",
        ms(cross_p50),
        ms(cross_p99),
        latency.cross.max_latency_us as f64 / 1000.0,
        latency.cross.latencies.total()
    );
    println!(
        "latency: A → client of A p50 {} ms, p99 {} ms, max {:.1} ms (same instance)",
        ms(same_p50),
        ms(same_p99),
        latency.same.max_latency_us as f64 / 1000.0
    );
    for (name, report) in
        [("A → in-process subscriber of B", &latency.in_b), ("A → in-process subscriber of A", &latency.in_a)]
    {
        println!(
            "latency: {name} p50 {} ms, p99 {} ms, max {} ms (no HTTP)",
            ms(report["p50_ms"].as_f64()),
            ms(report["p99_ms"].as_f64()),
            ms(report["max_ms"].as_f64()),
        );
    }
    let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
    // The three keys first (serde_json's map is sorted, and the other keys sort after them).
    println!(
        "{}",
        serde_json::json!({
            "append_events_per_sec": append.round(),
            "cross_instance_p50_ms": round(cross_p50),
            "cross_instance_p99_ms": round(cross_p99),
            "events": latency.events,
            "in_process_cross_p99_ms": round(latency.in_b["p99_ms"].as_f64()),
            "in_process_same_p99_ms": round(latency.in_a["p99_ms"].as_f64()),
            "lost": latency.lost,
            "raw_append_events_per_sec": raw_append.round(),
            "same_instance_p99_ms": round(same_p99),
        })
    );
    Ok(())
}
