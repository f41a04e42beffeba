//! `rotor worker` as a real process: it registers in a `file:` discovery directory, serves
//! generate calls on the request plane (called here through `rotor_runtime`, as a frontend
//! would), and on SIGTERM deregisters, drains and exits 0.
//!
//! Needs the model (ROTOR_TEST_MODEL, else the default cache path): the echo engine reads its
//! tokenizer and template, the native engine runs it.

#[allow(dead_code)] // the curl and /metrics helpers serve e2e.rs
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rotor_protocol::worker::{decode_output, encode_request, GENERATE_ENDPOINT};
use rotor_protocol::{
    EngineOutput, FinishReason, GenerateRequest, SamplingParams, StopConditions, WireError,
};
use rotor_runtime::{
    Discovery, DiscoveryConfig, Instance, InstanceId, PathPrefix, RequestPlaneClient,
    RequestPlaneConfig,
};
use support::model_path;

const DEADLINE: Duration = Duration::from_secs(120);

/// A `rotor worker` child process, killed on drop if still running.
struct WorkerProcess {
    child: Child,
    instance_id: InstanceId,
    addr: String,
}

impl WorkerProcess {
    fn start(args: &[&str]) -> WorkerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .arg("worker")
            .arg("--model")
            .arg(model_path())
            .args(args)
            .env("ROTOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rotor worker");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[rotor worker] {line}");
                if line.contains("rotor: worker ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let Ok(line) = rx.recv_timeout(DEADLINE) else {
            let _ = child.kill();
            panic!("rotor worker did not report ready within {DEADLINE:?}");
        };
        let word_after = |key: &str| {
            line.split(key)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no {key:?} in {line:?}"))
                .to_string()
        };
        let instance_id = InstanceId::from_hex(&word_after("instance ")).expect("hex instance id");
        let addr = word_after(" on ");
        WorkerProcess {
            child,
            instance_id,
            addr,
        }
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "rotor worker did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn greedy(id: &str, prompt: &[u32], max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids: prompt.to_vec(),
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens,
            ..StopConditions::default()
        },
    }
}

/// Calls the worker's generate endpoint and reads the whole response.
async fn generate(
    instance: &Instance,
    req: &GenerateRequest,
) -> (Vec<EngineOutput>, Option<WireError>) {
    let client = RequestPlaneClient::connect(&instance.address, RequestPlaneConfig::default())
        .await
        .expect("connect to the worker");
    let mut stream = client
        .call(GENERATE_ENDPOINT, encode_request(req).into())
        .await
        .expect("call");
    let mut outputs = Vec::new();
    while let Some(item) = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("response stalled")
    {
        match item {
            Ok(chunk) => outputs.push(decode_output(&chunk).expect("an EngineOutput")),
            Err(error) => return (outputs, Some(error)),
        }
    }
    (outputs, None)
}

/// Discovery key files in `dir` naming `id`.
fn key_files_of(dir: &Path, id: InstanceId) -> Vec<String> {
    std::fs::read_dir(dir.join("keys"))
        .expect("keys dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains(&id.to_string()) && !name.starts_with('.'))
        .collect()
}

async fn registered(discovery: &dyn Discovery, worker: &WorkerProcess) -> Instance {
    let instances = discovery
        .list(&PathPrefix::parse("").expect("prefix"))
        .await
        .expect("list");
    let found: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.instance_id == worker.instance_id)
        .collect();
    assert_eq!(found.len(), 1, "instances: {instances:?}");
    assert_eq!(found[0].address, worker.addr);
    found[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_worker_registers_serves_and_leaves_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = format!("file:{}", dir.path().display());
    let mut worker = WorkerProcess::start(&["--engine", "echo", "--discovery", &spec]);

    let instance_files = key_files_of(dir.path(), worker.instance_id);
    assert!(
        instance_files
            .iter()
            .any(|f| f.starts_with("rotor~instances~")),
        "{instance_files:?}"
    );
    let discovery = DiscoveryConfig::parse(&spec)
        .expect("spec")
        .connect()
        .await
        .expect("discovery");
    let instance = registered(discovery.as_ref(), &worker).await;
    assert_eq!(instance.path.to_string(), "rotor/backend/generate");
    let cards = discovery
        .model_cards(Some("smollm2-135m-instruct"))
        .await
        .expect("cards");
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].instance_id, worker.instance_id);
    assert_eq!(cards[0].card.tokenizer.tokens.len(), 49152);

    let (outputs, error) = generate(&instance, &greedy("e1", &[7, 8, 9], 5)).await;
    assert_eq!(error, None);
    let tokens: Vec<u32> = outputs.iter().flat_map(|o| o.token_ids.clone()).collect();
    assert_eq!(tokens, vec![7, 8, 9, 7, 8]);
    assert_eq!(
        outputs.last().and_then(|o| o.finish_reason),
        Some(FinishReason::Length)
    );

    let status = worker.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(
        key_files_of(dir.path(), worker.instance_id),
        Vec::<String>::new()
    );
    let left = discovery
        .list(&PathPrefix::parse("").expect("prefix"))
        .await
        .expect("list");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_worker_answers_a_greedy_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = format!("file:{}", dir.path().display());
    let mut worker = WorkerProcess::start(&[
        "--engine",
        "native",
        "--threads",
        "1",
        "--kv-cache-memory",
        "64MiB",
        "--discovery",
        &spec,
    ]);
    let discovery = DiscoveryConfig::parse(&spec)
        .expect("spec")
        .connect()
        .await
        .expect("discovery");
    let instance = registered(discovery.as_ref(), &worker).await;
    let cards = discovery.model_cards(None).await.expect("cards");
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].card.kv_block_size, Some(16));

    // Any in-vocabulary ids will do: this checks the plumbing, model quality is e2e.rs's job.
    let prompt = [504, 3575, 282, 4649, 314];
    let (first, error) = generate(&instance, &greedy("n1", &prompt, 8)).await;
    assert_eq!(error, None);
    let tokens: Vec<u32> = first.iter().flat_map(|o| o.token_ids.clone()).collect();
    assert_eq!(tokens.len(), 8);
    assert!(tokens.iter().all(|&t| (t as usize) < 49152));
    assert_eq!(
        first.last().and_then(|o| o.finish_reason),
        Some(FinishReason::Length)
    );
    // Greedy is deterministic (the second call also hits the prefix cache).
    let (second, _) = generate(&instance, &greedy("n2", &prompt, 8)).await;
    let again: Vec<u32> = second.iter().flat_map(|o| o.token_ids.clone()).collect();
    assert_eq!(again, tokens);

    assert_eq!(worker.terminate().code(), Some(0));
    assert!(key_files_of(dir.path(), worker.instance_id).is_empty());
}
