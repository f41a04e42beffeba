//! Which machine this process runs on, as far as sharing memory goes.
//!
//! Two workers may move KV through shared memory, and count one copy of a block in a shared
//! host pool for both, only when they see the same `/dev/shm`. [`host_id`] names that: the
//! kernel's boot id, the host name and the identity (device and inode) of `/dev/shm`, hashed,
//! so two containers on one machine with separate `/dev/shm` mounts get different ids, and a
//! reboot gives a new one. `ROTOR_HOST_ID` overrides it (tests that play two hosts on one
//! machine, or a deployment that knows better).

use std::sync::OnceLock;

/// This process's host id, computed once: `ROTOR_HOST_ID` if set and not empty, else
/// `h-` and 16 hex digits of a hash of what shares `/dev/shm`.
pub fn host_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| match std::env::var("ROTOR_HOST_ID") {
        Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => derive_host_id(),
    })
}

fn derive_host_id() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let shm = shm_identity();
    let mut hash = Fnv1a::default();
    for part in [boot.trim(), name.trim(), shm.as_str()] {
        hash.write(part.as_bytes());
        hash.write(&[0]);
    }
    format!("h-{:016x}", hash.0)
}

#[cfg(unix)]
fn shm_identity() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/dev/shm")
        .map(|m| format!("{}:{}", m.dev(), m.ino()))
        .unwrap_or_default()
}

#[cfg(not(unix))]
fn shm_identity() -> String {
    String::new()
}

/// FNV-1a, 64 bits: stable across builds and Rust versions (unlike `DefaultHasher`), which a
/// value compared between processes needs.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_id_is_stable_and_shaped() {
        let a = derive_host_id();
        assert_eq!(a, derive_host_id());
        assert!(a.starts_with("h-") && a.len() == 18, "{a}");
        assert!(a[2..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        let mut h = Fnv1a::default();
        h.write(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let empty = Fnv1a::default();
        assert_eq!(empty.0, 0xcbf2_9ce4_8422_2325);
    }
}
