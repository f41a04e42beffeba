//! rotor-engine (under construction)
