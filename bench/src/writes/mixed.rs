//! `mixed`: every write operation at once, with the service's RSS sampled every second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bench::{Error, cpu_ticks, enc, engine, rss_kib, start_service, wrk_with};

use crate::{Bench, flow, latency, mb, mib, thousands};

const MIXED_LUA: &str = include_str!("mixed.lua");

/// `(name, count)` lines of wrk's output that start with `prefix` (the mixed script's `done`), summed by name.
fn tally(output: &str, prefix: &str) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for line in output.lines() {
        let Some((name, n)) = line
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(' '))
        else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match counts.iter_mut().find(|(k, _)| k == name) {
            Some((_, total)) => *total += n,
            None => counts.push((name.to_owned(), n)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
}

pub fn mixed(b: &Bench) -> Result<(), Error> {
    let ws = b.workspace("mixed")?;
    bench::write_config(
        &ws.dir,
        &ws.base,
        &format!(
            "{}[tokens]\naccess_token_ttl_secs = {}\n",
            crate::OPEN,
            b.o.access_ttl
        ),
    )?;
    let resource = ws.resource();
    let (client_id, cookie) = b.runtime.block_on(async {
        let (auth, _store) = engine(&ws.dir, &ws.base).await?;
        let client_id = flow::client(&auth).await?;
        let cookie = flow::session(&auth, &client_id, &resource).await?;
        Ok::<_, Error>((client_id, cookie))
    })?;
    let script = ws.dir.join("mixed.lua");
    std::fs::write(&script, MIXED_LUA)?;
    let code_form = format!(
        "&redirect_uri={}&code_verifier={}&client_id={}&resource={}",
        enc(flow::REDIRECT),
        flow::VERIFIER,
        enc(&client_id),
        enc(&resource)
    );
    let (svc, _) = start_service(&b.bin, &ws.dir, ws.port)?;
    let pid = svc.0.id();
    let limit = (2 * b.o.connections / b.o.threads).to_string();
    let target = flow::authorize_target(&client_id, &resource);
    let cookie = format!("fa_session={cookie}");
    let stop = AtomicBool::new(false);
    let before = cpu_ticks(pid);
    let (run, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            let started = Instant::now();
            let mut next = Duration::from_secs(1);
            while !stop.load(Ordering::Relaxed) {
                if started.elapsed() >= next {
                    samples.push(rss_kib(pid, "VmRSS:"));
                    next += Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        });
        let run = wrk_with(
            &b.load(b.o.mixed_seconds),
            "mixed",
            &ws.base,
            &script,
            &[&target, &cookie, &code_form, &client_id, &limit],
        );
        stop.store(true, Ordering::Relaxed);
        (run, sampler.join())
    });
    let run = run?;
    let samples = samples.map_err(|_| "the RSS sampler panicked")?;
    let ticks = cpu_ticks(pid) - before;
    let peak = rss_kib(pid, "VmHWM:");
    drop(svc);

    let ops = tally(&run.output, "op ");
    let answers = tally(&run.output, "answer ");
    let sent: u64 = ops.iter().map(|(_, n)| n).sum();
    println!(
        "mixed: register, authorize, code exchange, refresh, revoke at once for {} s, {} connections, access tokens live {} s",
        b.o.mixed_seconds, b.o.connections, b.o.access_ttl
    );
    println!(
        "  {}; server CPU {:.3} ms per request",
        latency(&run),
        b.cpu_ms(ticks, run.requests)
    );
    println!(
        "  sent: {}",
        ops.iter()
            .map(|(op, n)| format!("{op} {:.0}%", 100.0 * *n as f64 / sent.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  answers: {}",
        answers
            .iter()
            .map(|(kind, n)| format!("{kind} ×{}", thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for what in run
        .output
        .lines()
        .filter_map(|l| l.strip_prefix("unexpected "))
    {
        println!("  unexpected answer: {what}");
    }
    let warm = usize::try_from(b.o.warmup_seconds)
        .unwrap_or(usize::MAX)
        .min(samples.len() / 2);
    let settled = samples.get(warm..).unwrap_or_default();
    let mean = settled.iter().sum::<u64>() as f64 / settled.len().max(1) as f64;
    let low = settled.iter().min().copied().unwrap_or(0);
    let high = settled.iter().max().copied().unwrap_or(0);
    println!(
        "  RSS: peak {:.1} MiB (target ≤ 64); after {warm} s of warm-up, {} samples: {:.1} to {:.1} MiB, {:+.1}% / {:+.1}% around the mean {:.1} MiB (target within ±10%)",
        mib(peak),
        settled.len(),
        mib(low),
        mib(high),
        100.0 * (low as f64 - mean) / mean.max(1.0),
        100.0 * (high as f64 - mean) / mean.max(1.0),
        mean / 1024.0
    );
    // A dip (memory handed back) widens the spread as much as growth would: the percentiles show which it is.
    let mut sorted = settled.to_vec();
    sorted.sort_unstable();
    let pct = |p: usize| {
        sorted
            .get((sorted.len().saturating_sub(1)) * p / 100)
            .copied()
            .unwrap_or(0)
    };
    let below = settled.iter().filter(|k| (**k as f64) < 0.9 * mean).count();
    let above = settled.iter().filter(|k| (**k as f64) > 1.1 * mean).count();
    println!(
        "  RSS after the warm-up: 1st percentile {:.1} MiB, median {:.1}, 99th {:.1}; {below} samples below -10%, {above} above +10%",
        mib(pct(1)),
        mib(pct(50)),
        mib(pct(99)),
    );
    let every = (samples.len() / 12).max(1);
    println!(
        "  RSS every {every} s (MiB): {}; store {:.1} MiB at the end",
        samples
            .iter()
            .step_by(every)
            .map(|k| format!("{:.1}", mib(*k)))
            .collect::<Vec<_>>()
            .join(" "),
        mb(ws.store_bytes())
    );
    if answers
        .iter()
        .any(|(kind, _)| kind.starts_with("unexpected"))
    {
        return Err("mixed: unexpected answers (see above)".into());
    }
    Ok(())
}
