//! One conformance suite for every discovery backend: `mem`, `file:` and `etcd://` (a real
//! etcd-server started per test on free ports). Each scenario is written once and run against
//! each backend; every wait is a poll or a receive with a deadline.

mod discovery_support;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use discovery_support::{big_card, eventually, instance, next_event, no_event_for, Fixture};
use rotor_runtime::{Discovery, DiscoveryEvent, PathPrefix};

/// A long TTL, for scenarios that must prove removal happens by deregistration, not expiry.
const LONG_TTL: Duration = Duration::from_secs(60);

async fn register_then_list(fx: Fixture) -> Result<()> {
    let discovery = fx.client().await?;
    let ns = fx.namespace();
    let mut inst = instance(&ns, "worker", "generate", "127.0.0.1:9001");
    inst.metadata = serde_json::json!({"role": "decode", "slots": 8});
    let registration = discovery.register(inst.clone()).await?;
    assert_eq!(registration.instance(), &inst);

    for prefix in [
        ns.clone(),
        format!("{ns}/worker"),
        format!("{ns}/worker/generate"),
    ] {
        let listed = discovery.list(&PathPrefix::parse(&prefix)?).await?;
        assert_eq!(listed, vec![inst.clone()], "list({prefix})");
    }
    for prefix in [
        format!("{ns}/worker/other"),
        format!("{ns}/work"),
        format!("{ns}x"),
    ] {
        let listed = discovery.list(&PathPrefix::parse(&prefix)?).await?;
        assert_eq!(listed, vec![], "list({prefix}) must not match");
    }
    registration.deregister().await?;
    assert_eq!(discovery.list(&PathPrefix::parse(&ns)?).await?, vec![]);
    Ok(())
}

async fn watch_sees_added_then_removed(fx: Fixture) -> Result<()> {
    let discovery = fx.client().await?;
    let ns = fx.namespace();
    let prefix = PathPrefix::parse(&ns)?;
    let mut watch = discovery.watch(&prefix).await?;
    no_event_for(&mut watch, Duration::from_millis(300)).await?;

    let inst = instance(&ns, "worker", "generate", "127.0.0.1:9002");
    let registration = discovery.register(inst.clone()).await?;
    assert_eq!(
        next_event(&mut watch).await?,
        DiscoveryEvent::Added(inst.clone())
    );

    // A watch started later first reports what is already there.
    let mut late = discovery.watch(&prefix).await?;
    assert_eq!(
        next_event(&mut late).await?,
        DiscoveryEvent::Added(inst.clone())
    );

    registration.deregister().await?;
    assert_eq!(
        next_event(&mut watch).await?,
        DiscoveryEvent::Removed(inst.clone())
    );
    assert_eq!(next_event(&mut late).await?, DiscoveryEvent::Removed(inst));
    no_event_for(&mut watch, Duration::from_millis(300)).await?;
    Ok(())
}

async fn two_instances_from_two_clients(fx: Fixture) -> Result<()> {
    let first = fx.client().await?;
    let second = fx.client().await?;
    let ns = fx.namespace();
    let mut a = instance(&ns, "worker", "generate", "127.0.0.1:9003");
    let mut b = instance(&ns, "worker", "generate", "127.0.0.1:9004");
    // Fixed ids so the listing order (by key) is known.
    a.instance_id = rotor_runtime::InstanceId(1);
    b.instance_id = rotor_runtime::InstanceId(2);
    let reg_a = first.register(a.clone()).await?;
    let reg_b = second.register(b.clone()).await?;

    let prefix = PathPrefix::parse(&format!("{ns}/worker/generate"))?;
    assert_eq!(first.list(&prefix).await?, vec![a.clone(), b.clone()]);
    assert_eq!(second.list(&prefix).await?, vec![a.clone(), b.clone()]);

    let mut watch = second.watch(&prefix).await?;
    let mut initial = vec![next_event(&mut watch).await?, next_event(&mut watch).await?];
    initial.sort_by_key(|event| match event {
        DiscoveryEvent::Added(i) | DiscoveryEvent::Removed(i) => i.instance_id,
    });
    assert_eq!(
        initial,
        vec![
            DiscoveryEvent::Added(a.clone()),
            DiscoveryEvent::Added(b.clone())
        ]
    );

    reg_a.deregister().await?;
    assert_eq!(next_event(&mut watch).await?, DiscoveryEvent::Removed(a));
    assert_eq!(second.list(&prefix).await?, vec![b]);
    drop(reg_b);
    Ok(())
}

async fn dropped_registration_disappears(fx: Fixture) -> Result<()> {
    let discovery = fx.client_with_ttl(LONG_TTL).await?;
    let ns = fx.namespace();
    let prefix = PathPrefix::parse(&ns)?;
    let inst = instance(&ns, "worker", "generate", "127.0.0.1:9005");
    let registration = discovery.register(inst.clone()).await?;
    let mut watch = discovery.watch(&prefix).await?;
    assert_eq!(
        next_event(&mut watch).await?,
        DiscoveryEvent::Added(inst.clone())
    );

    drop(registration);
    // The TTL is a minute: seeing it go within seconds proves the drop removed it.
    assert_eq!(next_event(&mut watch).await?, DiscoveryEvent::Removed(inst));
    eventually("dropped instance unlisted", Duration::from_secs(5), || {
        let discovery = discovery.clone();
        let prefix = prefix.clone();
        async move { Ok(discovery.list(&prefix).await?.is_empty()) }
    })
    .await
}

async fn crashed_holder_expires_within_ttl(fx: Fixture) -> Result<()> {
    let discovery = fx.client().await?;
    let observer = fx.client().await?;
    let ns = fx.namespace();
    let prefix = PathPrefix::parse(&ns)?;
    let inst = instance(&ns, "worker", "generate", "127.0.0.1:9006");
    let registration = discovery.register(inst.clone()).await?;
    let mut watch = observer.watch(&prefix).await?;
    assert_eq!(
        next_event(&mut watch).await?,
        DiscoveryEvent::Added(inst.clone())
    );

    // Kept alive past several TTLs while the holder lives…
    tokio::time::sleep(fx.ttl * 2).await;
    assert_eq!(
        observer.list(&prefix).await?,
        vec![inst.clone()],
        "alive while refreshed"
    );

    // …and gone within the TTL (plus the store's expiry granularity) once it stops.
    registration.abandon();
    let deadline = fx.ttl + fx.expiry_slack();
    let event = tokio::time::timeout(deadline + Duration::from_secs(1), watch.recv())
        .await
        .context("no Removed event within the TTL")?;
    assert_eq!(event, Some(DiscoveryEvent::Removed(inst)));
    assert_eq!(observer.list(&prefix).await?, vec![]);
    Ok(())
}

async fn model_card_round_trip_2mb(fx: Fixture) -> Result<()> {
    let discovery = fx.client().await?;
    let reader = fx.client().await?;
    let ns = fx.namespace();
    let model = format!("{ns}/SmolLM2 test");
    let card = big_card(&model, 2_000_000);
    let json_len = serde_json::to_vec(&card)?.len();
    ensure!(json_len > 2_000_000, "card is only {json_len} bytes");

    let registration = discovery
        .register(instance(&ns, "worker", "generate", "127.0.0.1:9007"))
        .await?;
    registration.put_model_card(&card).await?;
    let cards = reader.model_cards(Some(&model)).await?;
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].instance_id, registration.instance_id());
    assert!(
        cards[0].card == card,
        "2 MB card differs after the round trip"
    );
    let all = reader.model_cards(None).await?;
    assert!(all.iter().any(|entry| entry.card.name == model));
    assert!(reader
        .model_cards(Some(&format!("{model}x")))
        .await?
        .is_empty());

    // Replacing with a small card leaves exactly the small one.
    let mut small = card.clone();
    small.tokenizer.tokens.truncate(10);
    small.tokenizer.token_types.truncate(10);
    small.tokenizer.merges.clear();
    registration.put_model_card(&small).await?;
    let cards = reader.model_cards(Some(&model)).await?;
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].card, small);

    // And the big one again (a second chunk generation).
    registration.put_model_card(&card).await?;
    assert!(reader.model_cards(Some(&model)).await?[0].card == card);

    registration.deregister().await?;
    assert!(reader.model_cards(Some(&model)).await?.is_empty());
    Ok(())
}

/// Shared so the per-backend modules below stay one line per scenario.
async fn run(
    scenario: fn(Fixture) -> futures::future::BoxFuture<'static, Result<()>>,
    fx: Fixture,
) {
    if let Err(e) = scenario(fx).await {
        panic!("{e:?}");
    }
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            use super::*;
            use futures::FutureExt;

            async fn fixture() -> Fixture {
                Fixture::$backend().await.expect("backend fixture starts")
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn register_then_list() {
                run(|fx| super::register_then_list(fx).boxed(), fixture().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_sees_added_then_removed() {
                run(
                    |fx| super::watch_sees_added_then_removed(fx).boxed(),
                    fixture().await,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_instances_from_two_clients() {
                run(
                    |fx| super::two_instances_from_two_clients(fx).boxed(),
                    fixture().await,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dropped_registration_disappears() {
                run(
                    |fx| super::dropped_registration_disappears(fx).boxed(),
                    fixture().await,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crashed_holder_expires_within_ttl() {
                run(
                    |fx| super::crashed_holder_expires_within_ttl(fx).boxed(),
                    fixture().await,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn model_card_round_trip_2mb() {
                run(
                    |fx| super::model_card_round_trip_2mb(fx).boxed(),
                    fixture().await,
                )
                .await
            }
        }
    };
}

conformance!(mem);
conformance!(file);
conformance!(etcd);

#[allow(dead_code)]
fn assert_object_safe(_: Arc<dyn Discovery>) {}

/// The reason cards are chunked: etcd (default `--max-request-bytes`, 1.5 MiB) refuses a 2 MB
/// value in one put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_refuses_a_2mb_value_in_one_put() -> Result<()> {
    use rotor_runtime::discovery::etcd::EtcdStore;
    use rotor_runtime::discovery::store::KvStore;
    let fx = Fixture::etcd().await?;
    let url = fx.etcd_guard().lock().expect("lock").client_url();
    let store = EtcdStore::connect(&[url]).await?;
    let lease = store.grant_lease(Duration::from_secs(10)).await?;
    let refused = store
        .put("rotor/test/big", vec![b'x'; 2_000_000], lease)
        .await;
    ensure!(refused.is_err(), "etcd accepted a 2 MB value");
    store
        .put("rotor/test/small", vec![b'x'; 500_000], lease)
        .await?;
    Ok(())
}
