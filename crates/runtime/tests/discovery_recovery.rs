//! Discovery under failure: a holder process killed with `kill -9`, a lease lost behind the
//! holder's back, and an etcd restart. Uses real processes throughout.

mod discovery_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use discovery_support::{eventually, instance, next_event, Fixture};
use rotor_runtime::{DiscoveryConfig, DiscoveryEvent, Instance, PathPrefix};

const CHILD_SPEC: &str = "ROTOR_TEST_DISCOVERY_CHILD_SPEC";
const CHILD_INSTANCE: &str = "ROTOR_TEST_DISCOVERY_CHILD_INSTANCE";
const CHILD_TTL_MS: &str = "ROTOR_TEST_DISCOVERY_CHILD_TTL_MS";

/// Not a test on its own: the body of the child process that `kill -9` scenarios start (this
/// same test binary, run with `--ignored --exact child_holder`). It registers the instance
/// given in the environment and then waits to be killed.
#[tokio::test]
#[ignore = "helper process for the kill -9 scenarios"]
async fn child_holder() {
    let spec = std::env::var(CHILD_SPEC).expect("run only by the kill -9 scenarios");
    let instance: Instance =
        serde_json::from_str(&std::env::var(CHILD_INSTANCE).expect("instance")).expect("json");
    let ttl_ms: u64 = std::env::var(CHILD_TTL_MS)
        .expect("ttl")
        .parse()
        .expect("ms");
    let discovery = DiscoveryConfig::parse(&spec)
        .expect("spec")
        .with_lease_ttl(Duration::from_millis(ttl_ms))
        .connect()
        .await
        .expect("connect");
    let _registration = discovery.register(instance).await.expect("register");
    println!("REGISTERED");
    std::future::pending::<()>().await;
}

/// A worker process is killed with SIGKILL: it leaves discovery within its lease TTL.
async fn killed_process_leaves_within_ttl(fx: Fixture, spec: String) -> Result<()> {
    let observer = fx.client().await?;
    let ns = fx.namespace();
    let prefix = PathPrefix::parse(&ns)?;
    let inst = instance(&ns, "worker", "generate", "127.0.0.1:9100");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--ignored", "--exact", "child_holder", "--nocapture"])
        .env(CHILD_SPEC, spec)
        .env(CHILD_INSTANCE, serde_json::to_string(&inst)?)
        .env(CHILD_TTL_MS, fx.ttl.as_millis().to_string())
        .stdout(Stdio::null())
        .spawn()
        .context("spawn the holder process")?;
    let mut watch = observer.watch(&prefix).await?;
    let added = next_event(&mut watch).await;
    if added.is_err() {
        let _ = child.kill();
    }
    assert_eq!(added?, DiscoveryEvent::Added(inst.clone()));

    // Outlive a couple of TTLs: the child's keeper holds it.
    tokio::time::sleep(fx.ttl * 2).await;
    assert_eq!(observer.list(&prefix).await?, vec![inst.clone()]);

    child.kill().context("kill -9 the holder")?;
    child.wait()?;
    let removed = tokio::time::timeout(
        fx.ttl + fx.expiry_slack() + Duration::from_secs(1),
        watch.recv(),
    )
    .await
    .context("killed holder still registered after its TTL")?;
    assert_eq!(removed, Some(DiscoveryEvent::Removed(inst)));
    assert_eq!(observer.list(&prefix).await?, vec![]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_killed_process_leaves_within_ttl() -> Result<()> {
    let fx = Fixture::file().await?;
    let spec = match &fx.backend {
        discovery_support::Backend::File(dir) => format!("file:{}", dir.path().display()),
        _ => unreachable!(),
    };
    killed_process_leaves_within_ttl(fx, spec).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_process_leaves_within_ttl() -> Result<()> {
    let fx = Fixture::etcd().await?;
    let addr = fx.etcd_guard().lock().expect("lock").client_addr();
    killed_process_leaves_within_ttl(fx, format!("etcd://{addr}")).await
}

/// Someone removes the holder's lease (a reader judged it stale during a long pause; an
/// operator revoked it): the holder notices on its next refresh and registers again.
async fn lost_lease_is_regranted(
    fx: Fixture,
    drop_leases: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let holder = fx.client().await?;
    let observer = fx.client().await?;
    let ns = fx.namespace();
    let prefix = PathPrefix::parse(&ns)?;
    let inst = instance(&ns, "worker", "generate", "127.0.0.1:9101");
    let _registration = holder.register(inst.clone()).await?;
    let mut watch = observer.watch(&prefix).await?;
    assert_eq!(
        next_event(&mut watch).await?,
        DiscoveryEvent::Added(inst.clone())
    );

    drop_leases()?;
    assert_eq!(
        next_event(&mut watch).await?,
        DiscoveryEvent::Removed(inst.clone())
    );
    assert_eq!(
        next_event(&mut watch).await?,
        DiscoveryEvent::Added(inst.clone())
    );
    assert_eq!(observer.list(&prefix).await?, vec![inst]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_lost_lease_is_regranted() -> Result<()> {
    let fx = Fixture::file().await?;
    let leases = match &fx.backend {
        discovery_support::Backend::File(dir) => dir.path().join("leases"),
        _ => unreachable!(),
    };
    lost_lease_is_regranted(fx, move || {
        let mut removed = 0;
        for entry in std::fs::read_dir(&leases)? {
            std::fs::remove_file(entry?.path())?;
            removed += 1;
        }
        ensure!(removed == 1, "expected one lease file, found {removed}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_lost_lease_is_regranted() -> Result<()> {
    let fx = Fixture::etcd().await?;
    let url = fx.etcd_guard().lock().expect("lock").client_url();
    lost_lease_is_regranted(fx, move || {
        let etcdctl = |args: &[&str]| -> Result<String> {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg("--endpoints")
                .arg(&url)
                .args(args)
                .output()
                .context("run etcdctl (apt install etcd-client)")?;
            ensure!(
                out.status.success(),
                "etcdctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(String::from_utf8(out.stdout)?)
        };
        let listing = etcdctl(&["lease", "list"])?;
        let ids: Vec<&str> = listing
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        ensure!(
            ids.len() == 1,
            "expected one lease, etcdctl says {listing:?}"
        );
        etcdctl(&["lease", "revoke", ids[0]])?;
        Ok(())
    })
    .await
}

/// etcd goes away for longer than the TTL and comes back on the same data dir and port: the
/// registration is there again and a watch started before the outage keeps reporting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_registration_returns_and_watch_resumes() -> Result<()> {
    let fx = Fixture::etcd().await?;
    let holder = fx.client().await?;
    let observer = fx.client().await?;
    let ns = fx.namespace();
    let prefix = PathPrefix::parse(&ns)?;
    let first = instance(&ns, "worker", "generate", "127.0.0.1:9102");
    let registration = holder.register(first.clone()).await?;
    let mut watch = observer.watch(&prefix).await?;
    assert_eq!(
        next_event(&mut watch).await?,
        DiscoveryEvent::Added(first.clone())
    );

    let etcd = fx.etcd_guard();
    {
        let etcd = etcd.clone();
        tokio::task::spawn_blocking(move || etcd.lock().expect("lock").stop()).await?;
    }
    // Down for longer than the TTL while the keeper retries.
    tokio::time::sleep(fx.ttl * 2).await;
    {
        let etcd = etcd.clone();
        tokio::task::spawn_blocking(move || etcd.lock().expect("lock").start_again()).await??;
    }

    eventually(
        "registration listed after the restart",
        Duration::from_secs(15),
        || {
            let observer = observer.clone();
            let prefix = prefix.clone();
            let first = first.clone();
            async move { Ok(observer.list(&prefix).await? == vec![first]) }
        },
    )
    .await?;

    // The old watch still reports: a newcomer after the restart, then a departure.
    let second = instance(&ns, "worker", "generate", "127.0.0.1:9103");
    let newcomer = observer.register(second.clone()).await?;
    let mut seen = Vec::new();
    while !seen.contains(&DiscoveryEvent::Added(second.clone())) {
        let event = next_event(&mut watch).await?;
        // A resync may re-report the first instance's removal and return; never anything else.
        ensure!(
            event == DiscoveryEvent::Added(second.clone())
                || event == DiscoveryEvent::Added(first.clone())
                || event == DiscoveryEvent::Removed(first.clone()),
            "unexpected event {event:?}"
        );
        seen.push(event);
    }
    registration.deregister().await?;
    loop {
        let event = next_event(&mut watch).await?;
        if event == DiscoveryEvent::Removed(first.clone()) {
            break;
        }
        ensure!(
            event == DiscoveryEvent::Added(first.clone()),
            "unexpected event {event:?}"
        );
    }

    // The holder's keeper survived the outage: still listed after several more TTLs.
    tokio::time::sleep(fx.ttl * 2).await;
    assert_eq!(observer.list(&prefix).await?, vec![second]);
    newcomer.deregister().await?;
    Ok(())
}
