//! `growth`: what every refresh leaves in the store, measured by the store file's size, over keep-alive
//! connections that each refresh their own grants in turn (exact counts, unlike `wrk`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::{Conn, Error, cpu_ticks, enc, rss_kib, start_service};

use crate::{Bench, load::grants, mb, mib, thousands};

/// One refresh over `conn`; `token` becomes the rotated token.
fn refresh_once(conn: &mut Conn, client_id: &str, token: &mut String) -> Result<(), Error> {
    let body = format!(
        "grant_type=refresh_token&client_id={}&refresh_token={}",
        enc(client_id),
        enc(token)
    );
    let reply = conn.send(
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    )?;
    if reply.status != 200 {
        return Err(format!("refresh answered {}: {}", reply.status, reply.body).into());
    }
    let issued: serde_json::Value = serde_json::from_str(&reply.body)?;
    *token = issued
        .get("refresh_token")
        .and_then(serde_json::Value::as_str)
        .ok_or("no refresh_token in the answer")?
        .to_owned();
    Ok(())
}

/// `rounds` refreshes of every grant, the grants split between `workers` keep-alive connections, each refreshing
/// its own grants in turn. Prints progress to stderr every 10 s.
fn refresh_rounds(
    port: u16,
    client_id: &str,
    tokens: Vec<String>,
    workers: usize,
    rounds: u64,
) -> Result<Vec<String>, Error> {
    let total = rounds * tokens.len() as u64;
    let per = tokens.len().div_ceil(workers.max(1)).max(1);
    let mut owned: Vec<Vec<String>> = Vec::new();
    let mut rest = tokens.into_iter();
    loop {
        let chunk: Vec<String> = rest.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        owned.push(chunk);
    }
    let done = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = owned
            .into_iter()
            .map(|mut mine| {
                let (done, failed) = (&done, &failed);
                scope.spawn(move || -> Result<Vec<String>, String> {
                    let mut conn = Conn::new(port);
                    for _ in 0..rounds {
                        for token in &mut mine {
                            if failed.load(Ordering::Relaxed) {
                                return Err("another connection failed".into());
                            }
                            refresh_once(&mut conn, client_id, token).map_err(|e| {
                                failed.store(true, Ordering::Relaxed);
                                e.to_string()
                            })?;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(mine)
                })
            })
            .collect();
        let started = Instant::now();
        let mut told = Duration::ZERO;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if started.elapsed() >= told + Duration::from_secs(10) {
                told = started.elapsed();
                eprintln!(
                    "  … {} of {} refreshes",
                    thousands(done.load(Ordering::Relaxed)),
                    thousands(total)
                );
            }
        }
        let mut tokens = Vec::new();
        for h in handles {
            tokens.extend(h.join().map_err(|_| "a refresh thread panicked")??);
        }
        Ok(tokens)
    })
}

pub fn growth(b: &Bench) -> Result<(), Error> {
    let ws = b.workspace("growth")?;
    let (client_id, tokens) = grants(b, &ws)?;
    let n = tokens.len() as u64;
    let rounds = (b.o.refreshes / n.max(1)).max(2);
    // Each connection owns the same number of grants (the last one maybe fewer).
    let per = tokens.len().div_ceil(b.o.connections as usize);
    let workers = tokens.len().div_ceil(per);
    let (svc, _) = start_service(&b.bin, &ws.dir, ws.port)?;
    let pid = svc.0.id();
    let tokens = refresh_rounds(ws.port, &client_id, tokens, workers, 1)?;
    let first = ws.store_bytes();
    let started = Instant::now();
    let before = cpu_ticks(pid);
    refresh_rounds(ws.port, &client_id, tokens, workers, rounds - 1)?;
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(pid) - before;
    let last = ws.store_bytes();
    let rss = rss_kib(pid, "VmRSS:");
    drop(svc);
    let total = rounds * n;
    let later = (rounds - 1) * n;
    println!(
        "growth: {n} grants refreshed in turn over {workers} keep-alive connections, {} refreshes",
        thousands(total)
    );
    println!(
        "  store after the first {n} refreshes {:.2} MiB ({} bytes per live grant); after {}: {:.2} MiB ({} bytes per live grant) = {:+.1}% (target within ±10%)",
        mb(first),
        thousands(first / n),
        thousands(total),
        mb(last),
        thousands(last / n),
        100.0 * (last as f64 - first as f64) / first as f64
    );
    println!(
        "  {} bytes per refresh; {:.0} refreshes/s, server CPU {:.3} ms per refresh; RSS at the end {:.1} MiB",
        thousands(last.saturating_sub(first) / later.max(1)),
        later as f64 / elapsed,
        b.cpu_ms(ticks, later),
        mib(rss)
    );
    Ok(())
}
