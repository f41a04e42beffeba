//! The local connector with real processes, and the frontend scrape.

use std::time::{Duration, Instant};

use rotor_planner::{Connector, FrontendCounters, LocalConnector, Role};

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn dynamo_985_removing_one_local_worker_leaves_the_others_running() {
    let cmd: Vec<String> = ["sleep", "30"].iter().map(|s| s.to_string()).collect();
    let mut c = LocalConnector::new(&cmd).unwrap();
    c.set_target(Role::Aggregated, 3).unwrap();
    let r = c.replicas(Role::Aggregated).unwrap();
    assert_eq!((r.desired, r.ready), (3, 3));
    let pids = c.pids();
    c.set_target(Role::Aggregated, 1).unwrap();
    assert_eq!(c.pids(), vec![pids[0]], "the oldest worker stays");
    assert!(
        wait_until(|| c.stopping() == 0),
        "the removed workers exit on SIGTERM"
    );
    let r = c.replicas(Role::Aggregated).unwrap();
    assert_eq!((r.desired, r.ready), (1, 1));
    assert_eq!((c.started, c.stopped), (3, 2));
    // `sleep` dies of the SIGTERM: not a clean exit.
    assert_eq!((c.exited_ok, c.exited_error), (0, 2));
    let text = c.render_metrics();
    assert!(
        text.contains("rotor_planner_local_workers_started_total 3\n")
            && text.contains("rotor_planner_local_workers_stopped_total 2\n")
            && text.contains("rotor_planner_local_worker_exits_total{status=\"error\"} 2\n")
            && text.contains("rotor_planner_local_workers_running 1\n"),
        "{text}"
    );
    // A worker that dies is no longer counted ready.
    std::process::Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(wait_until(
        || c.replicas(Role::Aggregated).unwrap().ready == 0
    ));
}

#[test]
fn a_local_worker_that_drains_on_sigterm_is_counted_as_a_clean_exit() {
    let cmd: Vec<String> = [
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.05; done",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut c = LocalConnector::new(&cmd).unwrap();
    c.set_target(Role::Aggregated, 2).unwrap();
    std::thread::sleep(Duration::from_millis(200)); // let the shells install their trap
    c.set_target(Role::Aggregated, 1).unwrap();
    assert!(wait_until(|| c.stopping() == 0), "the removed worker exits");
    assert_eq!((c.exited_ok, c.exited_error), (1, 0));
    assert!(c
        .render_metrics()
        .contains("rotor_planner_local_worker_exits_total{status=\"ok\"} 1\n"));
    c.set_target(Role::Aggregated, 0).unwrap();
    assert!(wait_until(|| c.stopping() == 0));
    assert_eq!((c.exited_ok, c.exited_error), (2, 0));
}

#[test]
fn local_connector_needs_a_command_and_a_startable_program() {
    assert!(LocalConnector::new(&[])
        .unwrap_err()
        .to_string()
        .contains("after `--`"));
    let mut c = LocalConnector::new(&["/nonexistent/rotor-worker".to_string()]).unwrap();
    assert!(c.set_target(Role::Aggregated, 1).is_err());
}

#[test]
fn frontend_counters_diff_into_an_observation() {
    let before = "\
# TYPE rotor_frontend_requests_total counter
rotor_frontend_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 10
rotor_frontend_requests_total{endpoint=\"/v1/models\",status=\"200\"} 99
rotor_frontend_prompt_tokens_total{model=\"m\"} 1000
rotor_frontend_completion_tokens_total{model=\"m\"} 200
rotor_frontend_time_to_first_token_seconds_sum 2.5
rotor_frontend_time_to_first_token_seconds_count 10
rotor_frontend_inter_token_latency_seconds_sum 4
rotor_frontend_inter_token_latency_seconds_count 190
";
    let after = before
        .replace("\"200\"} 10", "\"200\"} 30")
        .replace("} 1000", "} 5000")
        .replace("} 200\n", "} 1200\n")
        .replace("seconds_sum 2.5", "seconds_sum 12.5")
        .replace(
            "first_token_seconds_count 10",
            "first_token_seconds_count 30",
        )
        .replace("seconds_sum 4\n", "seconds_sum 24\n")
        .replace("seconds_count 190", "seconds_count 1190");
    let a = FrontendCounters::parse(before);
    assert_eq!(a.requests, 10.0, "only completion endpoints count");
    let b = FrontendCounters::parse(&after);
    let obs = b.observation_since(&a, 10.0);
    assert_eq!(
        (obs.requests, obs.input_tokens, obs.output_tokens),
        (20, 4000, 1000)
    );
    assert_eq!(obs.rate_per_s(), 2.0);
    assert_eq!((obs.ttft.count, obs.ttft.mean_ms), (20, 500.0));
    assert_eq!((obs.itl.count, obs.itl.mean_ms), (1000, 20.0));
    // A restarted frontend (counters fell) counts from zero, never negative.
    let restarted = b.observation_since(&FrontendCounters { requests: 1e6, ..b }, 10.0);
    assert_eq!(restarted.requests, 30);
}

#[test]
fn virtual_connector_publishes_desired_and_reads_the_acknowledgement() {
    use rotor_planner::VirtualConnector;
    let dir = std::env::temp_dir().join(format!("rotor-planner-virtual-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("decision.json");
    let _ = std::fs::remove_file(&path);
    let mut c = VirtualConnector::new(path.clone());
    assert_eq!(c.replicas(Role::Aggregated).unwrap().desired, 0);
    c.set_target(Role::Aggregated, 3).unwrap();
    let r = c.replicas(Role::Aggregated).unwrap();
    assert_eq!((r.desired, r.ready), (3, 0));
    // The orchestrator acknowledges.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"ready\": 0", "\"ready\": 3");
    std::fs::write(&path, text).unwrap();
    let r = c.replicas(Role::Aggregated).unwrap();
    assert_eq!((r.desired, r.ready), (3, 3));
    std::fs::write(&path, "not json").unwrap();
    assert!(c.replicas(Role::Aggregated).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
