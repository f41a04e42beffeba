//! One conformance suite for every event plane: the in-process bus and core NATS (a real
//! `nats-server` started by the test on a free port). Each scenario runs against both.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use rotor_protocol::{KvEvent, KvEventData, RouterEvent, StoredBlock};
use rotor_runtime::event_plane::{
    subscribe_json, EventStream, InProcessEventPlane, KvEventPublisher, NatsEventPlane,
    TOPIC_KV_EVENTS, TOPIC_LOAD,
};
use rotor_runtime::{Error, EventPlane, EventSubject, EventsConfig};
use rotor_testing::NatsGuard;

/// Generous bound for an event to arrive; only a lost event makes a test hit it.
const DEADLINE: Duration = Duration::from_secs(20);

/// A backend under test. `plane()` returns a new publisher/subscriber handle: for NATS a new
/// connection, for the in-process bus another handle on the same bus.
enum Backend {
    InProcess(InProcessEventPlane),
    Nats(NatsGuard),
}

impl Backend {
    fn in_process() -> Self {
        Backend::InProcess(InProcessEventPlane::default())
    }

    fn nats() -> Result<Self> {
        Ok(Backend::Nats(
            NatsGuard::start().context("start nats-server (apt install nats-server)")?,
        ))
    }

    async fn plane(&self) -> Result<Arc<dyn EventPlane>> {
        Ok(match self {
            Backend::InProcess(bus) => Arc::new(bus.clone()),
            Backend::Nats(guard) => EventsConfig::parse(&guard.url())?.connect().await?,
        })
    }
}

fn subject(namespace: &str, component: &str, topic: &str) -> EventSubject {
    EventSubject::new(namespace, component, topic).expect("valid test subject")
}

async fn next_event(events: &mut EventStream) -> Result<String> {
    let payload = tokio::time::timeout(DEADLINE, events.next())
        .await
        .context("no event before the deadline")?
        .context("event stream ended")?;
    Ok(String::from_utf8(payload.to_vec())?)
}

async fn publish(plane: &dyn EventPlane, subject: &EventSubject, text: &str) -> Result<()> {
    Ok(plane
        .publish(subject, Bytes::copy_from_slice(text.as_bytes()))
        .await?)
}

async fn publish_then_receive_in_order(backend: Backend) -> Result<()> {
    let plane = backend.plane().await?;
    let load = subject("ns", "backend", TOPIC_LOAD);
    let mut events = plane.subscribe(&load).await?;
    for text in ["a", "b", "c"] {
        publish(plane.as_ref(), &load, text).await?;
    }
    for want in ["a", "b", "c"] {
        assert_eq!(next_event(&mut events).await?, want);
    }
    Ok(())
}

async fn subjects_are_isolated(backend: Backend) -> Result<()> {
    let plane = backend.plane().await?;
    let load = subject("ns", "backend", TOPIC_LOAD);
    let kv = subject("ns", "backend", TOPIC_KV_EVENTS);
    let other_ns = subject("ns2", "backend", TOPIC_LOAD);
    let other_component = subject("ns", "prefill", TOPIC_LOAD);
    let mut load_events = plane.subscribe(&load).await?;
    let mut kv_events = plane.subscribe(&kv).await?;
    let mut other_ns_events = plane.subscribe(&other_ns).await?;
    let mut other_component_events = plane.subscribe(&other_component).await?;

    publish(plane.as_ref(), &kv, "kv-1").await?;
    publish(plane.as_ref(), &other_ns, "ns2-1").await?;
    publish(plane.as_ref(), &other_component, "prefill-1").await?;
    publish(plane.as_ref(), &load, "load-1").await?;

    // Each subscriber's first event is its own subject's, although others were published first.
    assert_eq!(next_event(&mut load_events).await?, "load-1");
    assert_eq!(next_event(&mut kv_events).await?, "kv-1");
    assert_eq!(next_event(&mut other_ns_events).await?, "ns2-1");
    assert_eq!(next_event(&mut other_component_events).await?, "prefill-1");
    Ok(())
}

async fn every_subscriber_gets_every_event(backend: Backend) -> Result<()> {
    let publisher = backend.plane().await?;
    let load = subject("ns", "backend", TOPIC_LOAD);
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        // Separate handles (connections, for NATS) plus a second subscription on one handle.
        let plane = backend.plane().await?;
        subscribers.push(plane.subscribe(&load).await?);
        subscribers.push(plane.subscribe(&load).await?);
    }
    for i in 0..10 {
        publish(publisher.as_ref(), &load, &format!("e{i}")).await?;
    }
    for (s, events) in subscribers.iter_mut().enumerate() {
        for i in 0..10 {
            assert_eq!(next_event(events).await?, format!("e{i}"), "subscriber {s}");
        }
    }
    Ok(())
}

async fn order_is_kept_per_publisher(backend: Backend) -> Result<()> {
    const PER_PUBLISHER: usize = 300;
    let load = subject("ns", "backend", TOPIC_LOAD);
    let subscriber = backend.plane().await?;
    let mut events = subscriber.subscribe(&load).await?;
    let mut publishers = Vec::new();
    for p in 0..3 {
        let plane = backend.plane().await?;
        let load = load.clone();
        publishers.push(tokio::spawn(async move {
            for i in 0..PER_PUBLISHER {
                publish(plane.as_ref(), &load, &format!("{p}:{i}")).await?;
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            plane.flush().await?;
            Ok::<_, anyhow::Error>(())
        }));
    }
    for publisher in publishers {
        publisher.await??;
    }
    let mut next_index = [0usize; 3];
    for _ in 0..3 * PER_PUBLISHER {
        let event = next_event(&mut events).await?;
        let (p, i) = event.split_once(':').context("p:i")?;
        let (p, i): (usize, usize) = (p.parse()?, i.parse()?);
        assert_eq!(i, next_index[p], "publisher {p} out of order");
        next_index[p] += 1;
    }
    assert_eq!(next_index, [PER_PUBLISHER; 3]);
    Ok(())
}

async fn typed_kv_events_round_trip(backend: Backend) -> Result<()> {
    let plane = backend.plane().await?;
    let kv = subject("ns", "backend", TOPIC_KV_EVENTS);
    let mut events = subscribe_json::<RouterEvent>(plane.as_ref(), &kv).await?;
    // One handle publishes everything: order is only promised per publisher.
    let publisher = KvEventPublisher::new(Arc::clone(&plane), kv.clone(), 42);
    let stored = KvEvent {
        event_id: 7,
        data: KvEventData::stored(
            Some(3),
            vec![StoredBlock {
                block_hash: 11,
                tokens_hash: 12,
            }],
        ),
    };
    publisher.publish(stored.clone()).await?;
    plane.publish(&kv, Bytes::from_static(b"not json")).await?;
    publisher
        .publish(KvEvent {
            event_id: 8,
            data: KvEventData::Cleared,
        })
        .await?;

    let first = next_typed(&mut events).await??;
    assert_eq!(
        first,
        RouterEvent {
            worker_id: 42,
            event: stored
        }
    );
    match next_typed(&mut events).await? {
        Err(Error::EventDecode { subject, .. }) => assert_eq!(subject, kv.to_string()),
        other => bail!("expected a decode error, got {other:?}"),
    }
    let third = next_typed(&mut events).await??;
    assert_eq!(third.event.event_id, 8);
    assert_eq!(third.event.data, KvEventData::Cleared);
    Ok(())
}

async fn next_typed(
    events: &mut BoxStream<'static, rotor_runtime::Result<RouterEvent>>,
) -> Result<rotor_runtime::Result<RouterEvent>> {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .context("no event before the deadline")?
        .context("event stream ended")
}

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod in_process {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() -> Result<()> {
                    super::$scenario(Backend::in_process()).await
                }
            )*
        }
        mod nats {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() -> Result<()> {
                    let backend = tokio::task::spawn_blocking(Backend::nats).await??;
                    super::$scenario(backend).await
                }
            )*
        }
    };
}

conformance!(
    publish_then_receive_in_order,
    subjects_are_isolated,
    every_subscriber_gets_every_event,
    order_is_kept_per_publisher,
    typed_kv_events_round_trip,
);

/// NATS-only: the server restarts under a live publisher and subscriber; async-nats reconnects
/// on its own and both resume without being re-created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_publish_and_subscribe_resume_after_server_restart() -> Result<()> {
    let guard = tokio::task::spawn_blocking(NatsGuard::start).await??;
    let url = guard.url();
    let publisher = NatsEventPlane::connect(&url).await?;
    let subscriber = NatsEventPlane::connect(&url).await?;
    let load = subject("ns", "backend", TOPIC_LOAD);
    let mut events = subscriber.subscribe(&load).await?;
    publish(&publisher, &load, "before").await?;
    assert_eq!(next_event(&mut events).await?, "before");

    let guard = tokio::task::spawn_blocking(move || {
        let mut guard = guard;
        guard.restart().map(|()| guard)
    })
    .await??;

    // Probe until an event gets through both reconnected clients; every wait is bounded.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut probe = 0;
    loop {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no event delivered after the restart"
        );
        // Publishing may fail while the client is between connections; keep probing.
        let _ = publish(&publisher, &load, &format!("probe-{probe}")).await;
        probe += 1;
        match tokio::time::timeout(Duration::from_millis(200), events.next()).await {
            Ok(Some(payload)) => {
                assert!(payload.starts_with(b"probe-"), "{payload:?}");
                break;
            }
            Ok(None) => bail!("subscription ended across the restart"),
            Err(_elapsed) => continue,
        }
    }

    // After resuming, delivery is complete and ordered again.
    for i in 0..20 {
        publish(&publisher, &load, &format!("after-{i}")).await?;
    }
    let mut first = next_event(&mut events).await?;
    while first.starts_with("probe-") {
        first = next_event(&mut events).await?;
    }
    assert_eq!(first, "after-0");
    for i in 1..20 {
        assert_eq!(next_event(&mut events).await?, format!("after-{i}"));
    }
    drop(guard);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_connect_to_a_dead_server_is_a_nats_error() -> Result<()> {
    let port = rotor_testing::free_port();
    match NatsEventPlane::connect(&format!("nats://127.0.0.1:{port}")).await {
        Err(Error::Nats { op: "connect", .. }) => Ok(()),
        other => bail!("expected a NATS connect error, got {other:?}"),
    }
}
