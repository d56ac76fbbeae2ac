//! Load generator for `ade-server`: N Server-Sent-Events subscribers on one busy run.
//!
//! ```sh
//! cargo run --release --example loadgen -- --subscribers 1000 --rate 1000 --seconds 10
//! cargo run --release --example loadgen -- --runs 2000 --clients 16      # HTTP create+complete
//! cargo run --release --example loadgen -- --subscribers 100 --stalled 500  # slow readers
//! cargo run --release --example loadgen -- --subscribers 100 --stalled 500 --seconds 12 --warmup-secs 2
//! cargo run --release --example loadgen -- --knee --seconds 5          # the largest N within 250 ms
//! cargo run --release --example loadgen -- --compare --seconds 5       # … beside fanout_ceiling's
//! ```
//!
//! Unless `--url` is given it starts its own server: this program again, as a child process
//! (`--serve`), on the embedded default in a temporary directory, with a `loadgen` engine that
//! waits for `SIGUSR1` and then emits `--rate` events per second for `--seconds` seconds. The
//! subscribers connect first (and are counted idle: the server's RSS before and after they
//! connect gives the memory per idle subscriber), then the run starts. Every subscriber is the
//! checking reader `fanout_ceiling` uses too (`common::reader`: raw TCP, chunked decoding, no
//! allocation per frame): it checks that it receives every event exactly once, in order, up to
//! `run.completed`; the latency of an event is its receipt time minus its `created_at` (same
//! machine, same clock).
//!
//! `--knee` steps N = 500, 1,000, 1,500, … (a fresh server and run at each step) and reports the
//! largest N with p99 ≤ 250 ms at `--rate` and no event lost, and p50/p99 at 1,000 and 2,000.
//! `--compare` does the same for ade-server and the bare fan-out (`common::ceiling`, what
//! `fanout_ceiling` measures) alternating at every step, and ends with
//! `{"ade_knee", "ceiling_knee", "ratio", "ade_p99_1000_ms", "ceiling_p99_1000_ms", …}`.
//!
//! With `--url`, the server must know the configuration `--config` (default `loadgen`) and the run
//! starts as soon as it is created, so early events are replayed rather than live; the server's
//! memory is not measured.
//!
//! With `--stalled N`, the busy run is run twice, followed by the same subscribers, and the second
//! time N more readers request its stream and never read it: the subscribers' latency with and
//! without them side by side, and the server's RSS before they connect, with them (after the
//! run), and 3 s after they have closed their connections. `--warmup-secs S` leaves the first S
//! seconds of every run out of the latencies.
//!
//! The last line is one JSON object: `{"subscribers", "events", "lost", "p50_ms", "p99_ms",
//! "server_rss_per_sub_kib"}` (`--runs`: `{"runs", "clients", "http_runs_per_sec"}`; `--stalled`:
//! `{"stalled", "p50_ms_no_stall", "p99_ms_no_stall", "p50_ms_stalled", "p99_ms_stalled",
//! "p99_ratio", "rss_kib_before", "rss_kib_with_stalled", "rss_kib_after_close",
//! "rss_per_stalled_kib", "retained_after_close_kib", …}`).

use std::io::Write;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ade::Runtime;
use ade::config::Configuration;
use ade::engine::{Engine, EngineContext, EngineOutcome, EventSink};
use ade::event::{ConsoleLevel, ConsoleStream};
use ade::server::{Server, ServerConfig};
use clap::Parser;
use futures::StreamExt;

// No global allocator: the server side runs with the system allocator, like the `ade-server`
// binary (see BENCHMARKS.md for why).

mod common;

use common::knee::{self, Side, round1};
use common::reader::{self, Round, Target};
use common::{BoxError, BusyEngine, START, ceiling, find, spawn_listening};

#[derive(Debug, Parser)]
#[command(about = "N SSE subscribers on one busy run of ade-server, or HTTP runs per second")]
struct Args {
    /// Concurrent SSE subscribers on the busy run.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Events per second the busy run emits.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long the busy run emits.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Measure HTTP create+complete runs per second instead (`POST /runs?stream=true`).
    #[arg(long)]
    runs: Option<usize>,
    /// Concurrent clients for `--runs`.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// A running server to load instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Bearer token for `--url`.
    #[arg(long)]
    token: Option<String>,
    /// The busy run's configuration with `--url`.
    #[arg(long, default_value = "loadgen")]
    config: String,
    /// Internal: be the server (child process).
    #[arg(long, hide = true)]
    serve: bool,
    /// Also run the busy run a second time with this many stalled readers next to the
    /// subscribers (raw connections that never read their stream); compares the subscribers'
    /// latency with and without them and reports the server's memory (own server only).
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Count latencies only of events created this many seconds after the run starts (every
    /// round alike; own server only). With `--stalled`: what stalled readers cost once their
    /// buffers are full, apart from the first second or so in which they still take data like
    /// live readers.
    #[arg(long, default_value_t = 0)]
    warmup_secs: u64,
    /// Server workers (own server only).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Search the knee: N = 500, 1,000, … subscribers (own server only).
    #[arg(long)]
    knee: bool,
    /// Search the knee of ade-server and of the bare fan-out, alternating (own server only).
    #[arg(long)]
    compare: bool,
    /// The largest N the knee search tries.
    #[arg(long, default_value_t = 10_000)]
    max_subscribers: usize,
}

fn main() -> Result<(), BoxError> {
    if let Some(served) = ceiling::serve_if_asked() {
        return served;
    }
    let args = Args::parse();
    // As the `ade-server` binary builds its runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread().max_blocking_threads(64).enable_all().build()?;
    if args.serve { runtime.block_on(serve(args)) } else { runtime.block_on(drive(args)) }
}

// ---------------------------------------------------------------------------------------------
// The server side (child process).

/// Says one line and succeeds.
#[derive(Debug)]
struct TrivialEngine;

#[async_trait::async_trait]
impl Engine for TrivialEngine {
    fn version(&self) -> &str {
        "trivial-1"
    }

    async fn run(&self, _context: EngineContext, sink: EventSink) -> EngineOutcome {
        let _ = sink.console(ConsoleLevel::Info, ConsoleStream::Stdout, "hello").await;
        EngineOutcome::succeeded(Vec::new())
    }
}

async fn serve(args: Args) -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let configurations: Vec<Configuration> = vec![
        serde_json::from_value(serde_json::json!({ "id": "loadgen", "version": "1", "engine": "loadgen" }))?,
        serde_json::from_value(serde_json::json!({ "id": "trivial", "version": "1", "engine": "trivial" }))?,
    ];
    let mut builder = Runtime::builder()
        .data_dir(dir.path())
        .workers(args.workers)
        .engine("loadgen", Arc::new(BusyEngine { name: "loadgen", rate: args.rate, seconds: args.seconds }), None)
        .engine("trivial", Arc::new(TrivialEngine), None);
    for configuration in configurations {
        builder = builder.configuration(configuration);
    }
    let runtime = builder.build().await?;
    let server = Server::bind("127.0.0.1:0".parse()?, runtime, ServerConfig::new()).await?;
    let addr = server.local_addr();
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            START.notify_waiters();
        }
    });
    println!("listening http://{addr}");
    std::io::stdout().flush()?;
    // Serve until the parent closes our stdin (or dies).
    let parent_gone = async {
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
    };
    server.run(parent_gone).await?;
    drop(dir);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The load side.

/// The child server process; killed when dropped.
struct ChildServer {
    child: Child,
    url: String,
}

impl ChildServer {
    fn start(args: &Args) -> Result<Self, BoxError> {
        let (child, _, url) = spawn_listening(|command| {
            command
                .args(["--serve", "--rate", &args.rate.to_string(), "--seconds", &args.seconds.to_string()])
                .args(["--workers", &args.workers.to_string()]);
        })?;
        Ok(Self { child, url })
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
    }

    /// How many files (sockets included) the server has open.
    fn open_files(&self) -> Option<usize> {
        Some(std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).ok()?.count())
    }

    fn start_run(&self) -> Result<(), BoxError> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1)?;
        Ok(())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if !matches!(self.child.wait_timeout_secs(10), Some(true)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

trait WaitTimeout {
    fn wait_timeout_secs(&mut self, seconds: u64) -> Option<bool>;
}

impl WaitTimeout for Child {
    /// Whether the child exited within `seconds` (polled: this is process teardown, not a test).
    fn wait_timeout_secs(&mut self, seconds: u64) -> Option<bool> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if self.try_wait().ok()?.is_some() {
                return Some(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(false)
    }
}

async fn create_run(client: &reqwest::Client, args: &Args, url: &str, config: &str) -> Result<String, BoxError> {
    let mut request =
        client.post(format!("{url}/runs")).json(&serde_json::json!({ "configuration_id": config, "document_ids": [] }));
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    if !response.status().is_success() {
        return Err(format!("POST /runs: {} {}", response.status(), response.text().await?).into());
    }
    let run: serde_json::Value = response.json().await?;
    Ok(run["id"].as_str().ok_or("no run id")?.to_owned())
}

async fn drive(args: Args) -> Result<(), BoxError> {
    if args.knee || args.compare {
        if args.url.is_some() {
            return Err("--knee and --compare start their own servers (no --url)".into());
        }
        return knees(&args).await;
    }
    let child = match &args.url {
        Some(_) => None,
        None => Some(ChildServer::start(&args)?),
    };
    let url = match (&args.url, &child) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(child)) => child.url.clone(),
        (None, None) => return Err("no server".into()),
    };
    if let Some(runs) = args.runs {
        return http_runs(&args, &url, runs).await;
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    if args.stalled > 0 {
        let child = child.as_ref().ok_or("--stalled needs the load generator's own server (no --url)")?;
        return stalled_side_by_side(&args, &client, &url, child).await;
    }
    let target = ready_run(&client, &args, &url).await?;
    let followed = follow_run(&args, &target, args.subscribers, child.as_ref()).await?;
    let round = &followed.round;
    let (p50, p99) = (round.p50_ms(), round.p99_ms());
    println!(
        "{} subscribers, {} events of one run ({} ev/s for {} s): lost {}, out of order {}, errors {}",
        args.subscribers, round.events, args.rate, args.seconds, round.lost, round.wrong, round.errors
    );
    if let Some(error) = &round.first_error {
        eprintln!("first subscriber error: {error}");
    }
    println!("connected in {:.2} s; delivery latency p50 {p50:.1?} ms, p99 {p99:.1?} ms", round.connect_s);
    let mut per_sub_kib = None;
    if let (Some(before), Some(after)) = (followed.rss_idle, followed.rss_connected) {
        println!("server RSS {before} KiB idle, {after} KiB with the subscribers connected");
        per_sub_kib = Some(after.saturating_sub(before) as f64 / args.subscribers as f64);
    }
    println!(
        "{}",
        serde_json::json!({
            "subscribers": args.subscribers,
            "events": round.events,
            "lost": round.lost,
            "p50_ms": round1(p50),
            "p99_ms": round1(p99),
            "server_rss_per_sub_kib": round1(per_sub_kib),
        })
    );
    drop(child);
    Ok(())
}

/// Creates a run of the busy configuration and lets it reach its engine (which then waits for
/// the signal); where its events are read.
async fn ready_run(client: &reqwest::Client, args: &Args, url: &str) -> Result<Target, BoxError> {
    let run_id = create_run(client, args, url, &args.config).await?;
    let events_url = format!("{url}/runs/{run_id}/events");
    let probe = request(client, format!("{events_url}?after_sequence=0"), args.token.as_deref())
        .header("accept", "application/json")
        .send()
        .await?;
    if !probe.status().is_success() {
        return Err(format!("GET {events_url}: {}", probe.status()).into());
    }
    let address = url.trim_start_matches("http://").to_owned();
    Ok(Target { address, path: format!("/runs/{run_id}/events"), token: args.token.clone() })
}

fn request(client: &reqwest::Client, url: String, token: Option<&str>) -> reqwest::RequestBuilder {
    let request = client.get(url);
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// A round of subscribers, with the server's RSS before they connected and once they all had
/// (own server).
struct Followed {
    round: Round,
    rss_idle: Option<u64>,
    rss_connected: Option<u64>,
}

/// `n` SSE subscribers on the run of `target`: they connect, the run is started (own server), and
/// each follows it to `run.completed`. With `--url` the run started when it was created, and
/// every event counts.
async fn follow_run(args: &Args, target: &Target, n: usize, child: Option<&ChildServer>) -> Result<Followed, BoxError> {
    let rss_idle = child.and_then(ChildServer::rss_kib);
    let mut rss_connected = None;
    let warmup = child.map(|_| args.warmup_secs * 1_000_000);
    let round = reader::follow_all(target, n, warmup, || {
        let Some(child) = child else { return Ok(()) };
        rss_connected = child.rss_kib();
        child.start_run()
    })
    .await?;
    Ok(Followed { round, rss_idle, rss_connected })
}

/// `--knee` / `--compare`: ade-server's knee (a fresh server and run at each step), and the bare
/// fan-out's beside it.
async fn knees(args: &Args) -> Result<(), BoxError> {
    let ade = Side::new("ade-server", |n| async move {
        let child = ChildServer::start(args)?;
        let client = reqwest::Client::new();
        let target = ready_run(&client, args, &child.url).await?;
        Ok(follow_run(args, &target, n, Some(&child)).await?.round)
    });
    let mut sides = vec![ade];
    if args.compare {
        sides.push(Side::new("ceiling", |n| {
            ceiling::measure(ceiling::Options {
                connections: n,
                stalled: 0,
                rate: args.rate,
                seconds: args.seconds,
                linger_ms: 0,
                // As ade-server bounds an event stream's socket.
                send_buffer: 64 * 1024,
                workers: args.workers,
            })
        }));
    }
    knee::search(&mut sides, args.max_subscribers).await?;
    let mut summary = serde_json::Map::new();
    if let [ade, ceiling] = &sides[..] {
        summary.insert("ade_knee".to_owned(), ade.knee.into());
        summary.insert("ceiling_knee".to_owned(), ceiling.knee.into());
        let ratio = (ceiling.knee > 0).then(|| ade.knee as f64 / ceiling.knee as f64);
        summary.insert("ratio".to_owned(), ratio.map(|r| (r * 100.0).round() / 100.0).into());
        summary.insert("ade_p99_1000_ms".to_owned(), round1(ade.at(1000).and_then(|p| p.p99_ms)).into());
        summary.insert("ceiling_p99_1000_ms".to_owned(), round1(ceiling.at(1000).and_then(|p| p.p99_ms)).into());
        summary.extend(ade.summary("ade_"));
        summary.extend(ceiling.summary("ceiling_"));
    } else {
        summary.extend(sides[0].summary(""));
    }
    summary.insert("rate".to_owned(), args.rate.into());
    summary.insert("seconds".to_owned(), args.seconds.into());
    println!("{}", serde_json::Value::Object(summary));
    Ok(())
}

/// `--stalled N`: two runs of the busy engine, one after the other, followed by the same fast
/// subscribers; next to the second, N readers that send their request, read the response head
/// and the `retry:` line, and never read again. Reports the fast subscribers' latency of both runs
/// and the server's RSS before the stalled readers connect, once the second run is over (their
/// buffers as full as they get), and after they have closed their connections.
async fn stalled_side_by_side(
    args: &Args,
    client: &reqwest::Client,
    url: &str,
    child: &ChildServer,
) -> Result<(), BoxError> {
    let target = ready_run(client, args, url).await?;
    let alone = follow_run(args, &target, args.subscribers, Some(child)).await?.round;

    let target = ready_run(client, args, url).await?;
    let rss_before = child.rss_kib().ok_or("no RSS")?;
    let fds_before = child.open_files().ok_or("no /proc/<pid>/fd")?;
    let stalled: Vec<tokio::net::TcpStream> = futures::stream::iter(0..args.stalled)
        .map(|_| reader::stalled(&target))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let rss_stalled_idle = child.rss_kib().ok_or("no RSS")?;
    let beside = follow_run(args, &target, args.subscribers, Some(child)).await?.round;
    let rss_with = child.rss_kib().ok_or("no RSS")?;
    drop(stalled);
    // Wait for the server to close the stalled readers' connections (their sockets go away).
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.open_files().is_some_and(|fds| fds > fds_before + 16) {
        if Instant::now() > deadline {
            return Err("the server kept the stalled readers' connections for a minute".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server gives freed memory back at most every 2 s after connections close.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = child.rss_kib().ok_or("no RSS")?;

    let ((p50_alone, p99_alone), (p50_beside, p99_beside)) =
        ((alone.p50_ms(), alone.p99_ms()), (beside.p50_ms(), beside.p99_ms()));
    let n = args.stalled;
    let per_stalled = (rss_with.saturating_sub(rss_before)) as f64 / n as f64;
    println!(
        "{} fast subscribers, {} events per run ({} ev/s for {} s); lost {} / {}, errors {} / {}",
        args.subscribers, beside.events, args.rate, args.seconds, alone.lost, beside.lost, alone.errors, beside.errors
    );
    println!("fast readers, no stalled reader: p50 {p50_alone:.1?} ms, p99 {p99_alone:.1?} ms");
    println!("fast readers, {n} stalled readers: p50 {p50_beside:.1?} ms, p99 {p99_beside:.1?} ms");
    println!(
        "server RSS: {rss_before} KiB before, {rss_stalled_idle} KiB with {n} stalled readers connected, {rss_with} KiB \
         after the run ({per_stalled:.1} KiB per stalled reader), {rss_after} KiB after they closed"
    );
    let ratio = match (p99_alone, p99_beside) {
        (Some(alone), Some(beside)) if alone > 0.0 => Some(beside / alone),
        _ => None,
    };
    println!(
        "{}",
        serde_json::json!({
            "subscribers": args.subscribers,
            "stalled": n,
            "warmup_secs": args.warmup_secs,
            "events": beside.events,
            "lost": alone.lost + beside.lost,
            "p50_ms_no_stall": round1(p50_alone),
            "p99_ms_no_stall": round1(p99_alone),
            "p50_ms_stalled": round1(p50_beside),
            "p99_ms_stalled": round1(p99_beside),
            "p99_ratio": ratio.map(|r| (r * 100.0).round() / 100.0),
            "rss_kib_before": rss_before,
            "rss_kib_with_stalled": rss_with,
            "rss_kib_after_close": rss_after,
            "rss_per_stalled_kib": round1(Some(per_stalled)),
            "retained_after_close_kib": rss_after as i64 - rss_before as i64,
        })
    );
    Ok(())
}

/// `--runs`: runs created and followed to `run.completed` over HTTP, from `--clients` clients.
async fn http_runs(args: &Args, url: &str, runs: usize) -> Result<(), BoxError> {
    let client = reqwest::Client::new();
    let config = if args.url.is_some() { args.config.clone() } else { "trivial".to_owned() };
    let started = Instant::now();
    let mut tasks = Vec::new();
    let clients = args.clients.max(1);
    for client_index in 0..clients {
        let (client, url, config, token) = (client.clone(), url.to_owned(), config.clone(), args.token.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            for _ in (client_index..runs).step_by(clients) {
                let mut request = client
                    .post(format!("{url}/runs?stream=true"))
                    .json(&serde_json::json!({ "configuration_id": config, "document_ids": [] }));
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let body = request.send().await?.error_for_status()?.bytes().await?;
                if find(&body, br#""type":"run.completed""#).is_none() {
                    return Err::<usize, BoxError>("a streamed run ended without run.completed".into());
                }
                done += 1;
            }
            Ok(done)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    println!("{done} runs over HTTP from {} clients: {rate:.0} runs/s", args.clients);
    println!("{}", serde_json::json!({ "runs": done, "clients": args.clients, "http_runs_per_sec": rate.round() }));
    Ok(())
}
