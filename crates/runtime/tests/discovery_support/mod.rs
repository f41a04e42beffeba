//! Fixtures and polling helpers shared by the discovery test binaries.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rotor_protocol::{ModelCard, SamplingDefaults, TokenizerSpec};
use rotor_runtime::discovery::mem::MemStore;
use rotor_runtime::{
    Discovery, DiscoveryConfig, DiscoveryEvent, EndpointPath, Instance, InstanceWatch,
    StoreDiscovery,
};
use rotor_testing::EtcdGuard;

/// How long a test waits for an event that should come.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(10);

pub enum Backend {
    Mem(MemStore),
    File(tempfile::TempDir),
    Etcd(Arc<Mutex<EtcdGuard>>),
}

/// One backend instance for one test, with the TTL its clients use.
pub struct Fixture {
    pub backend: Backend,
    pub ttl: Duration,
    namespace: String,
}

impl Fixture {
    pub async fn mem() -> Result<Self> {
        Ok(Self::new(
            Backend::Mem(MemStore::new()),
            Duration::from_secs(1),
        ))
    }

    pub async fn file() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("rotor-disc-").tempdir()?;
        Ok(Self::new(Backend::File(dir), Duration::from_secs(1)))
    }

    /// etcd grants leases of at least ~2 s whatever one asks, so its TTL is 2 s.
    pub async fn etcd() -> Result<Self> {
        let guard = tokio::task::spawn_blocking(EtcdGuard::start)
            .await?
            .context("start etcd-server (apt install etcd-server)")?;
        Ok(Self::new(
            Backend::Etcd(Arc::new(Mutex::new(guard))),
            Duration::from_secs(2),
        ))
    }

    fn new(backend: Backend, ttl: Duration) -> Self {
        Self {
            backend,
            ttl,
            namespace: format!("t{:08x}", rand::random::<u32>()),
        }
    }

    /// A namespace no other test uses.
    pub fn namespace(&self) -> String {
        self.namespace.clone()
    }

    /// How late after the TTL the store may notice an expiry (its checking granularity).
    pub fn expiry_slack(&self) -> Duration {
        match self.backend {
            Backend::Mem(_) => Duration::from_millis(200),
            Backend::File(_) => Duration::from_millis(500),
            Backend::Etcd(_) => Duration::from_millis(1500),
        }
    }

    /// A client as a separate process would have one (mem: the same registry).
    pub async fn client(&self) -> Result<Arc<dyn Discovery>> {
        self.client_with_ttl(self.ttl).await
    }

    pub async fn client_with_ttl(&self, ttl: Duration) -> Result<Arc<dyn Discovery>> {
        match &self.backend {
            Backend::Mem(store) => Ok(Arc::new(StoreDiscovery::new(Arc::new(store.clone()), ttl))),
            _ => Ok(self.config()?.with_lease_ttl(ttl).connect().await?),
        }
    }

    /// The `--discovery` configuration of this backend (file and etcd only).
    pub fn config(&self) -> Result<DiscoveryConfig> {
        let spec = match &self.backend {
            Backend::Mem(_) => bail!("mem has no configuration another process could use"),
            Backend::File(dir) => format!("file:{}", dir.path().display()),
            Backend::Etcd(guard) => {
                let addr = guard.lock().expect("etcd guard lock").client_addr();
                format!("etcd://{addr}")
            }
        };
        Ok(DiscoveryConfig::parse(&spec)?
            .with_lease_ttl(self.ttl)
            .with_file_poll_interval(Duration::from_millis(50)))
    }

    pub fn etcd_guard(&self) -> Arc<Mutex<EtcdGuard>> {
        match &self.backend {
            Backend::Etcd(guard) => guard.clone(),
            _ => panic!("not an etcd fixture"),
        }
    }
}

pub fn instance(ns: &str, component: &str, endpoint: &str, address: &str) -> Instance {
    Instance::new(
        EndpointPath::new(ns, component, endpoint).expect("valid test names"),
        address,
    )
}

/// Polls `check` every 50 ms until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let start = Instant::now();
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if start.elapsed() > deadline {
            bail!("{what}: not true after {deadline:?} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next watch event, failing after [`EVENT_DEADLINE`].
pub async fn next_event(watch: &mut InstanceWatch) -> Result<DiscoveryEvent> {
    tokio::time::timeout(EVENT_DEADLINE, watch.recv())
        .await
        .context("no discovery event within the deadline")?
        .context("watch ended")
}

/// Fails if any event arrives within `quiet`.
pub async fn no_event_for(watch: &mut InstanceWatch, quiet: Duration) -> Result<()> {
    match tokio::time::timeout(quiet, watch.recv()).await {
        Err(_) => Ok(()),
        Ok(event) => bail!("unexpected discovery event {event:?}"),
    }
}

/// A model card whose JSON is at least `min_bytes` (a big vocabulary, like a real tokenizer).
pub fn big_card(name: &str, min_bytes: usize) -> ModelCard {
    let count = min_bytes / 20 + 1;
    let tokens: Vec<String> = (0..count).map(|i| format!("tok_{i:08}_pad")).collect();
    let merges: Vec<String> = (0..count / 4).map(|i| format!("a{i} b{i}")).collect();
    ModelCard {
        embedding_length: None,
        host_id: None,
        kv_host_pool: None,
        name: name.to_string(),
        context_length: 8192,
        tokenizer: TokenizerSpec {
            model: "gpt2".into(),
            pre: Some("smollm".into()),
            token_types: vec![1; tokens.len()],
            tokens,
            merges,
            scores: vec![],
            bos_token_id: Some(1),
            eos_token_id: Some(2),
            eot_token_ids: vec![],
            add_bos_token: false,
            add_space_prefix: false,
        },
        chat_template: Some("{% for m in messages %}{{ m.content }}{% endfor %}".into()),
        created: 1_700_000_000,
        sampling_defaults: SamplingDefaults::default(),
        kv_block_size: None,
        role: Default::default(),
    }
}
