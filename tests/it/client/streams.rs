//! The resumable event stream: equal to the stored log through cuts, restarts, duplicates; gaps
//! reported; bounded retries.

use std::time::Duration;

use ade_client::{Client, Error, NewRun, Reconnect};
use ade_core::Created;
use ade_core::event::{ConfigurationId, Envelope, RunId};
use ade_core::run::RunStatus;
use futures::StreamExt as _;

use crate::client::support::{PATIENCE, TestServer, Transport, cutting_proxy, fake_sse, quick, raw_log};

async fn create(client: &Client, configuration: &str) -> RunId {
    let request = NewRun::new(ConfigurationId::new(configuration).expect("configuration id"));
    match client.create_run(&request).await.expect("create a run") {
        Created::New(run) => run.id,
        other => panic!("a new run, not {other:?}"),
    }
}

/// Reads `stream` to its end; fails the test on an error or after [`PATIENCE`].
async fn collect(stream: ade_client::EventStream) -> Vec<Envelope> {
    let items: Vec<_> = tokio::time::timeout(PATIENCE, stream.collect::<Vec<_>>()).await.expect("the stream must end");
    items.into_iter().map(|item| item.expect("no error in the stream")).collect()
}

/// The typed events as their JSON lines.
fn lines(events: &[Envelope]) -> Vec<String> {
    events.iter().map(|e| e.to_json().expect("json")).collect()
}

fn assert_complete(events: &[Envelope]) {
    let terminal: Vec<_> = events.iter().filter(|e| e.is_terminal()).collect();
    assert_eq!(terminal.len(), 1, "exactly one run.completed");
    assert!(events.last().is_some_and(Envelope::is_terminal), "run.completed comes last");
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(sequences, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_equals_the_stored_log_over_http() {
    the_stream_equals_the_stored_log(Transport::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_equals_the_stored_log_in_process() {
    the_stream_equals_the_stored_log(Transport::Local).await;
}

async fn the_stream_equals_the_stored_log(transport: Transport) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = TestServer::start(dir.path()).await;
    let client = server.over(transport);
    let run = create(&client, "gated").await;
    // Follow live: the run waits at its gate until the stream has delivered its first events.
    let mut stream = client.events(run, 0);
    let first = stream.next().await.expect("an event").expect("no error");
    assert_eq!((first.sequence, first.event_type()), (1, "run.queued"));
    server.gate.add_permits(1);
    let mut events = vec![first];
    events.extend(collect(stream).await);
    assert_complete(&events);
    assert_eq!(lines(&events), raw_log(&server.base, &run.to_string()).await);

    // From a cursor: exactly the events after it.
    let after = collect(client.events(run, 4)).await;
    assert_eq!(lines(&after), lines(&events[4..]));
    // At the end of a finished run: the server answers 204 and the stream ends at once.
    let last = events.last().map_or(0, |e| e.sequence);
    assert!(collect(client.events(run, last)).await.is_empty());
    // The NDJSON read of the client agrees.
    assert_eq!(client.events_log(run, 0).await.expect("log"), events);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_cuts_connections_at_random_points_changes_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = TestServer::start(dir.path()).await;
    let client = server.client();
    for seed in [1_u64, 7, 42] {
        let run = create(&client, "long").await;
        let (proxy, connections, proxy_task) = cutting_proxy(server.addr, seed, 4000).await;
        let through = quick(Client::new(proxy).expect("client")).with_reconnect(
            Reconnect::new()
                .initial_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(20))
                .max_attempts(50),
        );
        let mut stream = through.events(run, 0);
        let first = stream.next().await.expect("an event").expect("no error");
        // Live from here on: the engine passes its gate once the stream is reading.
        server.gate.add_permits(1);
        let mut events = vec![first];
        events.extend(collect(stream).await);
        proxy_task.abort();
        assert_complete(&events);
        assert!(events.len() > 200, "seed {seed}: {} events", events.len());
        // Each connection carries at most 4000 bytes, so the stream must have reconnected often.
        let bytes: usize = events.iter().map(|e| e.to_json().map_or(0, |j| j.len())).sum();
        let connections = connections.load(std::sync::atomic::Ordering::SeqCst);
        assert!(connections > bytes / 4000, "seed {seed}: {connections} connections for {bytes} bytes");
        assert_eq!(lines(&events), raw_log(&server.base, &run.to_string()).await, "seed {seed}");
    }
    server.stop().await;
}

/// Where the first server of the restart test keeps its data (set only in its child process).
const CHILD_DIR: &str = "ADE_CLIENT_IT_SERVER_DIR";

/// The first server of the restart test, in a process of its own so that it really dies: serves
/// the directory on a free port, prints `LISTENING <addr>`, and runs until it is killed.
#[test]
#[ignore = "started as a child process by the_stream_resumes_across_a_server_restart"]
fn child_server() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    runtime.block_on(async {
        let server = TestServer::start(std::path::Path::new(&dir)).await;
        println!("LISTENING {}", server.addr);
        std::future::pending::<()>().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_across_a_server_restart() {
    use tokio::io::AsyncBufReadExt as _;

    let dir = tempfile::tempdir().expect("temporary directory");
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "client::streams::child_server", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the first server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines_out = tokio::io::BufReader::new(stdout).lines();
    // libtest prints `test … ... ` before the child's own output, on the same line.
    let addr: std::net::SocketAddr = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines_out.next_line().await.expect("child output") {
            if let Some((_, addr)) = line.split_once("LISTENING ") {
                return addr.trim().parse().expect("an address");
            }
        }
        panic!("the first server ended without listening");
    })
    .await
    .expect("the first server listens");
    let client = quick(Client::new(format!("http://{addr}")).expect("client"));
    let run = create(&client, "gated").await;
    let mut stream = client.events(run, 0);
    let mut events = Vec::new();
    // Read up to the engine's last line before its gate, then kill the server under the stream.
    while let Some(event) = stream.next().await {
        let event = event.expect("no error before the restart");
        let before_gate = event.event_type() == "console.line" && event.to_json().expect("json").contains("before 1");
        events.push(event);
        if before_gate {
            break;
        }
    }
    child.kill().await.expect("SIGKILL");
    let restarted = TestServer::start_on(dir.path(), addr).await;
    // The killed server's run was waiting at its gate; the restarted server's recovery ends it as
    // lost, so run.completed can only come from the new server.
    events.extend(collect(stream).await);
    assert_complete(&events);
    assert_eq!(lines(&events), raw_log(&restarted.base, &run.to_string()).await);
    let run = restarted.client().get_run(run).await.expect("the run");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.failure.map(|f| f.code).as_deref(), Some("orchestrator_lost"));
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_dropped_and_a_gap_is_reported() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = TestServer::start(dir.path()).await;
    let client = server.client();
    let run = create(&client, "quick").await;
    let done = client.wait(run).await.expect("wait");
    assert_eq!(done.status, RunStatus::Succeeded);
    let log = raw_log(&server.base, &run.to_string()).await;
    assert!(log.len() >= 5, "{log:?}");

    // Every event sent twice, some out of place: the stream is the log.
    let mut repeated = Vec::new();
    for (i, line) in log.iter().enumerate() {
        repeated.push(line.clone());
        repeated.push(line.clone());
        if i > 0 {
            repeated.push(log[i - 1].clone());
        }
    }
    let (fake, seen, fake_task) = fake_sse(repeated).await;
    let events = collect(quick(Client::new(fake).expect("client")).events(run, 0)).await;
    assert_eq!(lines(&events), log);
    assert_eq!(*seen.lock().expect("not poisoned"), [""], "one connection: it ended with run.completed");
    fake_task.abort();

    // Sequence 3 missing: 1, 2, then the gap as an error, then the end.
    let mut skipping = log.clone();
    skipping.remove(2);
    let (fake, seen, fake_task) = fake_sse(skipping).await;
    let items: Vec<_> = quick(Client::new(fake).expect("client")).events(run, 0).collect().await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(matches!(&items[0], Ok(e) if e.sequence == 1));
    assert!(matches!(&items[1], Ok(e) if e.sequence == 2));
    assert!(matches!(&items[2], Err(Error::Gap { expected: 3, got: 4 })), "{:?}", items[2]);
    assert_eq!(*seen.lock().expect("not poisoned"), [""], "a gap ends the stream: no reconnection");
    fake_task.abort();

    // A stream that keeps ending before run.completed is given up after the bounded attempts.
    let (fake, seen, fake_task) = fake_sse(log[..2].to_vec()).await;
    let bounded = Client::new(fake).expect("client").with_reconnect(
        Reconnect::new().initial_delay(Duration::from_millis(1)).max_delay(Duration::from_millis(5)).max_attempts(3),
    );
    let items: Vec<_> = bounded.events(run, 0).collect().await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(matches!(&items[2], Err(Error::GaveUp { attempts: 3, .. })), "{:?}", items[2]);
    // The first request has no cursor; every reconnection resumes after the last delivered event.
    assert_eq!(*seen.lock().expect("not poisoned"), ["", "2", "2"]);
    fake_task.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_listening_gives_up_after_the_bounded_attempts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let client = Client::new(format!("http://{addr}")).expect("client").with_reconnect(
        Reconnect::new().initial_delay(Duration::from_millis(1)).max_delay(Duration::from_millis(5)).max_attempts(4),
    );
    let items: Vec<_> = client.events(RunId::new(), 0).collect().await;
    assert_eq!(items.len(), 1, "{items:?}");
    match &items[0] {
        Err(Error::GaveUp { attempts: 4, last }) => assert!(matches!(**last, Error::Transport(_)), "{last:?}"),
        other => panic!("gave up, not {other:?}"),
    }
}
