//! Registered clients that nobody uses are deleted, so that anonymous registration cannot fill the store.
//!
//! # Why
//! `POST /register` is open by design (MCP clients register themselves), and most registrations that an
//! attacker or a broken client makes are never followed by an authorization. The Cloudflare provider and Rauthy
//! both collect such clients; so does this engine, on its injected clock:
//!
//! * a client that has not redeemed an authorization code within
//!   [`RegistrationPolicy::never_used_client_ttl`](crate::RegistrationPolicy::never_used_client_ttl) of
//!   registering is deleted;
//! * a client that has neither redeemed a code nor refreshed a token for
//!   [`RegistrationPolicy::idle_client_ttl`](crate::RegistrationPolicy::idle_client_ttl) is deleted with its
//!   grants (by then its refresh tokens have normally expired anyway).
//!
//! Use is recorded by [`Store::mark_client_used`](crate::Store::mark_client_used) at code redemption and, at
//! most once per [`USE_RESOLUTION`], at refresh, so a busy client costs one extra store write a day, not one per
//! refresh. Clients resolved from metadata documents are not stored and not collected.

use std::time::Duration;

use crate::Error;
use crate::server::AuthServer;

/// How many clients one store read of a collection returns.
const COLLECT_PAGE: usize = 256;

/// How stale a client's last-use record may get before a refresh renews it.
pub const USE_RESOLUTION: Duration = Duration::from_secs(24 * 3600);

/// What one collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CollectedClients {
    /// Clients that never completed an authorization in time.
    pub never_used: usize,
    /// Clients unused for too long.
    pub idle: usize,
}

impl AuthServer {
    /// Records that `client_id` was just used (at most once per [`USE_RESOLUTION`]).
    pub(crate) async fn note_client_use(&self, client_id: &str) -> Result<(), Error> {
        let now = self.clock.unix();
        let fresh = |t: u64| now.saturating_sub(t) < USE_RESOLUTION.as_secs();
        if self.noted_use.get(client_id).is_some_and(fresh) {
            return Ok(());
        }
        let mut last = self.store.client_last_used(client_id).await?;
        if !last.is_some_and(fresh) {
            self.store.mark_client_used(client_id, now).await?;
            last = Some(now);
        }
        if let Some(t) = last {
            self.noted_use.insert(client_id.to_owned(), t);
        }
        Ok(())
    }

    /// Deletes the registered clients the policy says are unused (see the module documentation);
    /// [`AuthServer::maintain`] calls it every [`COLLECT_EVERY`](crate::maintain::COLLECT_EVERY).
    ///
    /// # Errors
    /// Store failures (what was deleted before the failure stays deleted).
    pub async fn collect_clients(&self) -> Result<CollectedClients, Error> {
        let policy = &self.config.registration;
        let mut collected = CollectedClients::default();
        if policy.never_used_client_ttl.is_none() && policy.idle_client_ttl.is_none() {
            return Ok(collected);
        }
        let now = self.clock.unix();
        // Page by page, so that memory does not grow with the number of registered clients.
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self
                .store
                .clients_page(cursor.as_deref(), COLLECT_PAGE)
                .await?;
            for client in &page {
                self.collect_client(client, now, &mut collected).await?;
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(collected),
            }
        }
    }

    /// Deletes `client` if the policy says it is unused.
    async fn collect_client(
        &self,
        client: &crate::store::ClientRecord,
        now: u64,
        collected: &mut CollectedClients,
    ) -> Result<(), Error> {
        let policy = &self.config.registration;
        let older_than = |at: u64, ttl: Option<Duration>| {
            ttl.is_some_and(|ttl| at.saturating_add(ttl.as_secs()) <= now)
        };
        let id = client.client_id.as_str();
        let (stale, idle) = match self.store.client_last_used(id).await? {
            None => (
                older_than(client.issued_at, policy.never_used_client_ttl),
                false,
            ),
            Some(at) => (false, older_than(at, policy.idle_client_ttl)),
        };
        if !stale && !idle {
            return Ok(());
        }
        if self.remove_client(id).await?.deleted {
            if stale {
                collected.never_used += 1;
            } else {
                collected.idle += 1;
            }
            tracing::info!(client_id = %id, never_used = stale, "unused client deleted");
            self.emit(crate::events::Event::ClientDeleted {
                client_id: id,
                by: "collection",
            });
        }
        Ok(())
    }
}
