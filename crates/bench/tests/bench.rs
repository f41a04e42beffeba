//! Integration tests of rotor-bench (one test binary).

mod bench {
    pub mod args;
    pub mod end_to_end;
    pub mod fake_server;
    pub mod keep_alive;
    pub mod prompts;
    pub mod schedule;
    pub mod shared_prefix;
    pub mod stats;
    pub mod traces;
}
