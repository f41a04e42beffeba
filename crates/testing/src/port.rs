//! Free loopback ports for test servers.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports already handed out by this process, so two guards started back to back in one test
/// binary never receive the same port (the OS may offer a just-closed port again).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Returns a TCP port on 127.0.0.1 that was free a moment ago and that this process has not
/// handed out before. Another process may still take it before the caller binds it; the window
/// is small and test servers fail loudly (not silently) if it happens.
pub fn free_port() -> u16 {
    loop {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0 for a free port");
        let port = listener
            .local_addr()
            .expect("local_addr of a bound listener")
            .port();
        drop(listener);
        let mut guard = HANDED_OUT
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        for port in ports {
            TcpListener::bind(("127.0.0.1", port)).expect("a free port binds");
        }
    }
}
