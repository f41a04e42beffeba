//! Load tracker transitions: route → first token → finish, and worker reports.

use rotor_kv_router::{ActiveLoad, Error, LoadTracker, WorkerLoad};

fn load(prefill_tokens: u64, decode_blocks: u64, waiting: u64) -> ActiveLoad {
    ActiveLoad {
        prefill_tokens,
        decode_blocks,
        waiting,
    }
}

#[test]
fn requests_move_from_prefill_to_decode_to_gone() {
    let mut t = LoadTracker::new();
    t.add_request("a", 1, 30, 8).unwrap();
    t.add_request("b", 1, 12, 3).unwrap();
    t.add_request("c", 2, 5, 2).unwrap();
    assert_eq!(t.load(1), load(42, 0, 0));
    assert_eq!(t.load(2), load(5, 0, 0));

    t.mark_prefill_completed("a").unwrap();
    assert_eq!(t.load(1), load(12, 8, 0));
    // A second first-token notice changes nothing.
    t.mark_prefill_completed("a").unwrap();
    assert_eq!(t.load(1), load(12, 8, 0));

    assert_eq!(t.mark_finished("a").unwrap(), 1);
    assert_eq!(t.load(1), load(12, 0, 0));
    // Finished during prefill (cancelled): its prefill tokens leave.
    assert_eq!(t.mark_finished("b").unwrap(), 1);
    assert_eq!(t.load(1), load(0, 0, 0));
    assert_eq!(t.active_requests(), 1);
    assert_eq!(
        t.mark_finished("b").unwrap_err(),
        Error::UnknownRequest {
            request_id: "b".into()
        }
    );
    assert_eq!(
        t.add_request("c", 1, 1, 1).unwrap_err(),
        Error::DuplicateRequest {
            request_id: "c".into(),
            worker: 2
        }
    );
}

#[test]
fn reports_merge_with_tracked_load_by_maximum() {
    let mut t = LoadTracker::new();
    t.add_request("a", 1, 16, 10).unwrap();
    t.mark_prefill_completed("a").unwrap();
    let report = |active_blocks, waiting| WorkerLoad {
        active_blocks,
        total_blocks: 100,
        waiting,
        running: 0,
    };
    // The worker also serves other routers' requests: its report wins.
    t.update_reported(1, report(25, 3));
    assert_eq!(t.load(1), load(0, 25, 3));
    // A report older than our latest decision: our count wins.
    t.update_reported(1, report(4, 0));
    assert_eq!(t.load(1), load(0, 10, 0));
    assert_eq!(t.reported(1), Some(report(4, 0)));
    // Reports alone, for a worker we never routed to.
    t.update_reported(2, report(7, 1));
    assert_eq!(t.load(2), load(0, 7, 1));
    t.remove_worker(1);
    assert_eq!(t.load(1), ActiveLoad::default());
    assert_eq!(t.active_requests(), 0);
}
