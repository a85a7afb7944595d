//! `register` and `refresh`: the two write endpoints under `wrk`, with the service's CPU time per request.

use bench::{Error, cpu_ticks, engine, rss_kib, start_service, wrk_with};

use crate::{Bench, Workspace, flow, latency, mb, mib, thousands};

const REGISTER_LUA: &str = include_str!("register.lua");
const REFRESH_LUA: &str = include_str!("refresh.lua");

pub fn register(b: &Bench) -> Result<(), Error> {
    let ws = b.workspace("register")?;
    b.runtime.block_on(engine(&ws.dir, &ws.base))?;
    let script = ws.dir.join("register.lua");
    std::fs::write(&script, REGISTER_LUA)?;
    let (svc, _) = start_service(&b.bin, &ws.dir, ws.port)?;
    let pid = svc.0.id();
    let before = cpu_ticks(pid);
    let run = wrk_with(
        &b.load(b.o.seconds),
        "register",
        &format!("{}/register", ws.base),
        &script,
        &[],
    )?;
    let cpu = b.cpu_ms(cpu_ticks(pid) - before, run.requests);
    let rss = rss_kib(pid, "VmHWM:");
    drop(svc);
    println!("register: POST /register for {} s", b.o.seconds);
    println!("  {}", latency(&run));
    println!(
        "  server CPU {cpu:.3} ms per registration; peak RSS {:.1} MiB; store {:.1} MiB after",
        mib(rss),
        mb(ws.store_bytes())
    );
    if run.non_2xx > 0 {
        return Err("register: some registrations were refused".into());
    }
    Ok(())
}

/// A store with a client and `--grants` grants; the client id and a file of their refresh tokens.
pub fn grants(b: &Bench, ws: &Workspace) -> Result<(String, Vec<String>), Error> {
    let resource = ws.resource();
    b.runtime.block_on(async {
        let (auth, _store) = engine(&ws.dir, &ws.base).await?;
        let client_id = flow::client(&auth).await?;
        let tokens = flow::grants(&auth, &client_id, &resource, b.o.grants).await?;
        Ok::<_, Error>((client_id, tokens))
    })
}

pub fn refresh(b: &Bench) -> Result<(), Error> {
    let ws = b.workspace("refresh")?;
    let (client_id, tokens) = grants(b, &ws)?;
    let pool = ws.dir.join("pool.txt");
    std::fs::write(&pool, tokens.join("\n"))?;
    let script = ws.dir.join("refresh.lua");
    std::fs::write(&script, REFRESH_LUA)?;
    let (svc, _) = start_service(&b.bin, &ws.dir, ws.port)?;
    let pid = svc.0.id();
    let size_before = ws.store_bytes();
    let before = cpu_ticks(pid);
    let run = wrk_with(
        &b.load(b.o.seconds),
        "refresh",
        &format!("{}/token", ws.base),
        &script,
        &[
            &pool.to_string_lossy(),
            &client_id,
            &b.o.threads.to_string(),
        ],
    )?;
    let cpu = b.cpu_ms(cpu_ticks(pid) - before, run.requests);
    let rss = rss_kib(pid, "VmHWM:");
    drop(svc);
    let grown = ws.store_bytes().saturating_sub(size_before);
    println!(
        "refresh: POST /token grant_type=refresh_token for {} s, {} grants, every token used once",
        b.o.seconds, b.o.grants
    );
    println!("  {}", latency(&run));
    println!(
        "  server CPU {cpu:.3} ms per refresh (target ≤ 0.15); peak RSS {:.1} MiB; store +{:.1} MiB ({} bytes per refresh)",
        mib(rss),
        mb(grown),
        thousands(grown / run.requests.max(1))
    );
    if run.non_2xx > 0 {
        return Err("refresh: some refreshes were refused".into());
    }
    Ok(())
}
