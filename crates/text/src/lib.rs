//! rotor-text (under construction)
