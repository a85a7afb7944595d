//! `start`: a store with many registered clients, written straight through the store API, and what starting the
//! service on it costs.

use std::path::Path;
use std::time::{Duration, Instant};

use bench::{Error, Service, cpu_ticks, engine, rss_kib, start_service};
use oauth_core::store::ClientRecord;
use oauth_core::{Clock as _, Secret, SystemClock};

use crate::{Bench, REGISTER_BODY, mb, mib, thousands};

/// Writes `n` registered clients straight into the store, `at_once` inserts in flight; returns the time it took.
async fn seed_clients(dir: &Path, base: &str, n: u64, at_once: usize) -> Result<Duration, Error> {
    let (auth, store) = engine(dir, base).await?;
    let metadata = auth.check_registration(REGISTER_BODY.as_bytes())?;
    drop(auth);
    let confidential = metadata.token_endpoint_auth_method != "none";
    let now = SystemClock.unix();
    let started = Instant::now();
    let mut inflight = tokio::task::JoinSet::new();
    for i in 0..n {
        while inflight.len() >= at_once {
            inflight
                .join_next()
                .await
                .ok_or("no insert in flight")???;
        }
        let record = ClientRecord {
            client_id: Secret::generate().into_exposed(),
            secret_hash: confidential.then(|| Secret::generate().hash()),
            secret_expires_at: 0,
            registration_token_hash: Secret::generate().hash(),
            issued_at: now,
            metadata: metadata.clone(),
        };
        let store = std::sync::Arc::clone(&store);
        inflight.spawn(async move { store.insert_client(&record).await });
        if (i + 1) % 100_000 == 0 {
            eprintln!(
                "  … {} of {} clients ({:.0} s)",
                thousands(i + 1),
                thousands(n),
                started.elapsed().as_secs_f64()
            );
        }
    }
    while let Some(done) = inflight.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

pub fn start(b: &Bench) -> Result<(), Error> {
    let ws = b.workspace("start")?;
    let at_once = 64;
    let seeded = b
        .runtime
        .block_on(seed_clients(&ws.dir, &ws.base, b.o.clients, at_once))?;
    let size = ws.store_bytes();
    let mut ready = Vec::new();
    let mut idle = Vec::new();
    let mut peak = Vec::new();
    let mut busy = Vec::new();
    for _ in 0..b.o.starts.max(1) {
        let (svc, first): (Service, Duration) = start_service(&b.bin, &ws.dir, ws.port)?;
        std::thread::sleep(Duration::from_secs(b.o.idle_seconds));
        let pid = svc.0.id();
        ready.push(first.as_secs_f64() * 1000.0);
        idle.push(mib(rss_kib(pid, "VmRSS:")));
        peak.push(mib(rss_kib(pid, "VmHWM:")));
        busy.push(cpu_ticks(pid) as f64 / b.ticks);
        svc.stop()?;
    }
    // A start after a crash: the store was not closed cleanly.
    drop(start_service(&b.bin, &ws.dir, ws.port)?);
    let (svc, after_crash) = start_service(&b.bin, &ws.dir, ws.port)?;
    drop(svc);
    let list = |v: &[f64], digits: usize| {
        v.iter()
            .map(|x| format!("{x:.digits$}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sorted = ready.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "start: {} registered clients, written through Store::insert_client ({at_once} at once)",
        thousands(b.o.clients)
    );
    println!(
        "  seeded in {:.1} s ({:.0} clients/s); store {:.1} MiB ({} bytes per client)",
        seeded.as_secs_f64(),
        b.o.clients as f64 / seeded.as_secs_f64(),
        mb(size),
        thousands(size / b.o.clients.max(1))
    );
    println!(
        "  first /health answer after {median:.0} ms (median of {}: {} ms; target ≤ 100)",
        ready.len(),
        list(&ready, 0)
    );
    println!(
        "  {} s after start: RSS {} MiB (target ≤ 32), peak {} MiB, CPU used since start {} s",
        b.o.idle_seconds,
        list(&idle, 1),
        list(&peak, 1),
        list(&busy, 2)
    );
    println!(
        "  (each start above after a clean stop, SIGTERM; after a SIGKILL the first /health answer came after {:.0} ms)",
        after_crash.as_secs_f64() * 1000.0
    );
    Ok(())
}
