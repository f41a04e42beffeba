//! rotor-model (under construction)
