//! rotor-frontend (under construction)
