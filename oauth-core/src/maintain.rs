//! The engine's housekeeping: [`AuthServer::maintain`], the loop every running instance needs beside its
//! endpoints.
//!
//! # Why in the engine
//! Several of the engine's guarantees hold only while this loop runs: another instance's revocation reaches this
//! one within [`REVOCATION_SYNC_EVERY`] (and with
//! [`ServerConfig::revocation_max_staleness`](crate::ServerConfig::revocation_max_staleness) set, `/verify` fails
//! closed when syncs stop succeeding); a key rotated in on a shared store is loaded everywhere within
//! [`KEY_RELOAD_EVERY`], well before it starts signing; the signing key is rotated on its schedule (checked every
//! [`KEY_ROTATION_CHECK_EVERY`]); expired records, idle rate-limit entries and unused
//! clients do not accumulate. The periods are part of those guarantees, so they live next to them, and an
//! adapter only has to run the future (`tokio::spawn(async move { auth.maintain().await })`).
//!
//! Every chore's failure is logged and retried on its next tick; the loop itself never ends.

use std::time::Duration;

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior, interval, interval_at};

use crate::server::AuthServer;
use crate::store::StoreEvent;

/// How often revocations recorded by other instances are pulled (a shared store also announces them at once).
/// A [`ServerConfig::revocation_max_staleness`](crate::ServerConfig::revocation_max_staleness) must leave room
/// for a few of these.
pub const REVOCATION_SYNC_EVERY: Duration = Duration::from_secs(1);
/// How often expired records are purged from the store.
pub const PURGE_EVERY: Duration = Duration::from_secs(300);
/// How often rate-limit entries that carry no information any more are dropped.
pub const TIDY_EVERY: Duration = Duration::from_secs(60);
/// How often unused registered clients are collected (see [`AuthServer::collect_clients`]); the first
/// collection runs one period after the start.
pub const COLLECT_EVERY: Duration = Duration::from_secs(3600);
/// How often an instance on a shared store re-reads the signing keys (besides announcements): well within a
/// [`ServerConfig::key_activation_delay`](crate::ServerConfig::key_activation_delay) of 30 s, so a rotated-in
/// key is loaded everywhere before it signs.
pub const KEY_RELOAD_EVERY: Duration = Duration::from_secs(10);
/// How often an instance checks whether a scheduled signing-key rotation
/// ([`ServerConfig::signing_key_rotation`](crate::ServerConfig::signing_key_rotation)) is due (half the period
/// for periods shorter than two of these, but at least once a second): the rotation happens at most this long
/// after it falls due.
pub const KEY_ROTATION_CHECK_EVERY: Duration = Duration::from_secs(60);

impl AuthServer {
    /// Runs the housekeeping (see the [module documentation](crate::maintain)) until the future is dropped:
    /// revocation sync every [`REVOCATION_SYNC_EVERY`], purge of expired records, rate-limit tidying, collection
    /// of unused clients, the scheduled signing-key rotation ([`AuthServer::rotate_keys_if_due`]) and, on a
    /// store shared by several instances, the store's announcements and a periodic key reload. Failures are
    /// logged and retried on the next tick.
    ///
    /// Needs a tokio runtime with the time driver enabled.
    pub async fn maintain(&self) {
        let mut events = self.store.events();
        let shared = events.is_some();
        let mut sync = interval(REVOCATION_SYNC_EVERY);
        let mut purge = interval(PURGE_EVERY);
        let mut keys = interval(KEY_RELOAD_EVERY);
        let mut tidy = interval(TIDY_EVERY);
        let scheduled = self.config.signing_key_rotation;
        let mut rotation = interval(scheduled.map_or(KEY_ROTATION_CHECK_EVERY, |period| {
            KEY_ROTATION_CHECK_EVERY
                .min(period / 2)
                .max(Duration::from_secs(1))
        }));
        // The first collection one period after start, not at start: it walks every registered client, which is
        // work a start (and a restart loop) should not pay.
        let mut collect = interval_at(Instant::now() + COLLECT_EVERY, COLLECT_EVERY);
        sync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sync.tick() => if let Err(e) = self.sync().await {
                    tracing::warn!(error = %e, "revocation sync failed");
                },
                _ = purge.tick() => if let Err(e) = self.store.purge_expired().await {
                    tracing::warn!(error = %e, "purge failed");
                },
                _ = tidy.tick() => self.tidy_rate_limits(),
                _ = collect.tick() => match self.collect_clients().await {
                    Ok(c) if c.never_used + c.idle > 0 => tracing::info!(never_used = c.never_used, idle = c.idle, "unused clients deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "collecting unused clients failed"),
                },
                _ = keys.tick(), if shared => if let Err(e) = self.reload_keys().await {
                    tracing::warn!(error = %e, "key reload failed");
                },
                _ = rotation.tick(), if scheduled.is_some() => if let Err(e) = self.rotate_keys_if_due().await {
                    tracing::warn!(error = %e, "scheduled signing-key rotation failed");
                },
                event = next_event(&mut events) => {
                    let event = match event {
                        Ok(e) => e,
                        // Announcements were dropped: catch up as after a reconnection.
                        Err(RecvError::Lagged(_)) => StoreEvent::Reconnected,
                        Err(RecvError::Closed) => {
                            events = None;
                            continue;
                        }
                    };
                    if let Err(e) = self.on_store_event(event).await {
                        tracing::warn!(error = %e, ?event, "acting on a store announcement failed");
                    }
                }
            }
        }
    }
}

/// The next announcement; never resolves without a channel.
async fn next_event(events: &mut Option<Receiver<StoreEvent>>) -> Result<StoreEvent, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
