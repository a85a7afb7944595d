//! [`Instrumented`]: the store as the engine uses it, every operation in a `tracing` span named `store` (field
//! `op`, the method's name) and timed for the engine's [`EventSink`] ([`Event::StoreCall`]).
//!
//! # Why a wrapper
//! One place sees every store call of every backend, so a span exporter and a latency histogram need nothing
//! from the backends, and a new backend is measured without a line of its own. The span's only field is the
//! operation's name: keys are hashes of secrets or user and client ids, and records hold sealed secrets, so
//! none of them is ever a span field.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument as _;

use super::{
    ClientRecord, CodeRecord, CodeRedemption, ConsentRecord, GrantRecord, KeyRecord,
    PendingAuthorization, Revocation, SessionRecord, Store, StoreError, StoreEvent,
};
use crate::events::{Event, EventSink, micros};
use crate::types::TokenHash;

/// A store whose every operation is traced (a span `store` with the field `op`) and timed for an
/// [`EventSink`] ([`Event::StoreCall`]). The engine wraps every store in one; an embedder may wrap its own.
pub struct Instrumented {
    inner: Arc<dyn Store>,
    sink: Arc<dyn EventSink>,
}

impl Instrumented {
    /// Wraps `inner`, reporting each operation's duration to `sink`.
    pub fn new(inner: Arc<dyn Store>, sink: Arc<dyn EventSink>) -> Self {
        Instrumented { inner, sink }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = call.instrument(tracing::debug_span!("store", op)).await;
        self.sink.record(&Event::StoreCall {
            op,
            micros: micros(start.elapsed()),
            ok: result.is_ok(),
        });
        result
    }
}

#[async_trait]
impl Store for Instrumented {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        self.timed("insert_client", self.inner.insert_client(client))
            .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.timed("client", self.inner.client(client_id)).await
    }

    async fn replace_client(&self, client: &ClientRecord) -> Result<bool, StoreError> {
        self.timed("replace_client", self.inner.replace_client(client))
            .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        self.timed("delete_client", self.inner.delete_client(client_id))
            .await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.timed("list_clients", self.inner.list_clients()).await
    }

    async fn clients_page(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ClientRecord>, Option<String>), StoreError> {
        self.timed("clients_page", self.inner.clients_page(cursor, limit))
            .await
    }

    async fn count_clients(&self) -> Result<usize, StoreError> {
        self.timed("count_clients", self.inner.count_clients())
            .await
    }

    async fn mark_client_used(&self, client_id: &str, at: u64) -> Result<(), StoreError> {
        self.timed(
            "mark_client_used",
            self.inner.mark_client_used(client_id, at),
        )
        .await
    }

    async fn client_last_used(&self, client_id: &str) -> Result<Option<u64>, StoreError> {
        self.timed("client_last_used", self.inner.client_last_used(client_id))
            .await
    }

    async fn put_pending(
        &self,
        key: &TokenHash,
        p: &PendingAuthorization,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.timed("put_pending", self.inner.put_pending(key, p, ttl))
            .await
    }

    async fn pending(&self, key: &TokenHash) -> Result<Option<PendingAuthorization>, StoreError> {
        self.timed("pending", self.inner.pending(key)).await
    }

    async fn take_pending(
        &self,
        key: &TokenHash,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        self.timed("take_pending", self.inner.take_pending(key))
            .await
    }

    async fn put_code(
        &self,
        key: &TokenHash,
        code: &CodeRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.timed("put_code", self.inner.put_code(key, code, ttl))
            .await
    }

    async fn redeem_code(
        &self,
        key: &TokenHash,
        replay_ttl: Duration,
    ) -> Result<CodeRedemption, StoreError> {
        self.timed("redeem_code", self.inner.redeem_code(key, replay_ttl))
            .await
    }

    async fn put_grant(&self, grant: &GrantRecord, ttl: Duration) -> Result<(), StoreError> {
        self.timed("put_grant", self.inner.put_grant(grant, ttl))
            .await
    }

    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.timed("grant", self.inner.grant(grant_id)).await
    }

    async fn delete_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.timed("delete_grant", self.inner.delete_grant(grant_id))
            .await
    }

    async fn grants_of_client(&self, client_id: &str) -> Result<Vec<String>, StoreError> {
        self.timed("grants_of_client", self.inner.grants_of_client(client_id))
            .await
    }

    async fn grants_of_subject(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        self.timed("grants_of_subject", self.inner.grants_of_subject(subject))
            .await
    }

    async fn rotate_grant(
        &self,
        grant: &GrantRecord,
        expected_generation: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.timed(
            "rotate_grant",
            self.inner.rotate_grant(grant, expected_generation, ttl),
        )
        .await
    }

    async fn add_revocation(&self, r: &Revocation) -> Result<u64, StoreError> {
        self.timed("add_revocation", self.inner.add_revocation(r))
            .await
    }

    async fn revocations_since(&self, after: u64) -> Result<Vec<(u64, Revocation)>, StoreError> {
        self.timed("revocations_since", self.inner.revocations_since(after))
            .await
    }

    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        self.timed("put_key", self.inner.put_key(key)).await
    }

    async fn put_first_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        self.timed("put_first_key", self.inner.put_first_key(key))
            .await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.timed("keys", self.inner.keys()).await
    }

    async fn delete_key(&self, kid: &str) -> Result<(), StoreError> {
        self.timed("delete_key", self.inner.delete_key(kid)).await
    }

    async fn put_session(
        &self,
        key: &TokenHash,
        s: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.timed("put_session", self.inner.put_session(key, s, ttl))
            .await
    }

    async fn session(&self, key: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.timed("session", self.inner.session(key)).await
    }

    async fn delete_session(&self, key: &TokenHash) -> Result<(), StoreError> {
        self.timed("delete_session", self.inner.delete_session(key))
            .await
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        c: &ConsentRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.timed(
            "put_consent",
            self.inner.put_consent(subject, client_id, c, ttl),
        )
        .await
    }

    async fn consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        self.timed("consent", self.inner.consent(subject, client_id))
            .await
    }

    async fn count_failure(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.timed("count_failure", self.inner.count_failure(key, window))
            .await
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        self.timed("clear_failures", self.inner.clear_failures(key))
            .await
    }

    async fn put_ban(&self, key: &str, until: u64, ttl: Duration) -> Result<(), StoreError> {
        self.timed("put_ban", self.inner.put_ban(key, until, ttl))
            .await
    }

    async fn ban(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.timed("ban", self.inner.ban(key)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.timed("purge_expired", self.inner.purge_expired())
            .await
    }

    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<StoreEvent>> {
        self.inner.events()
    }
}
