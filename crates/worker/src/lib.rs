//! rotor-worker: hosts an engine on Rotor's runtime (work in progress; see the worker brief).
//!
//! Must not depend on HTTP frameworks or on `rotor-frontend`.
