//! Integration tests of rotor-kv-router (one test binary).

mod approx_index;
mod cost;
mod events;
mod index_model;
mod load_tracker;
mod prefix_index;
mod router;
mod selector;
mod tiers;
