//! MCP sessions: who opened each one, which process owner it maps to, and the stream its server-initiated
//! messages go to.
//!
//! A session id is 128 random bits from the OS: it is the only thing that ties a later request to a session,
//! and the owner check ([`Sessions::get`]) makes it useless to any other user even if it leaked: a session used
//! with another user's id is reported exactly like an unknown one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::RngCore;
use serde_json::Value;
use tokio::sync::mpsc;

use super::identity::Identity;

/// One MCP session.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    /// Who opened it; every later request must carry the same user id.
    pub identity: Identity,
    /// The key of the process serving it: the encoded user id, or the session id.
    pub owner: String,
    /// The client's `initialize` params (only `protocolVersion`, `capabilities`, `clientInfo`), replayed when its
    /// process is restarted.
    pub init_params: Value,
    state: Mutex<SessionState>,
}

#[derive(Debug)]
struct SessionState {
    last_used: Instant,
    /// The open `GET` stream, if any: server-initiated messages not tied to a request.
    stream: Option<mpsc::Sender<Value>>,
    /// The client's ids of its requests in flight (JSON text) → the id they have at the child, once forwarded.
    in_flight: HashMap<String, Option<u64>>,
}

impl Session {
    fn state(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn touch(&self) {
        self.state().last_used = Instant::now();
    }

    /// Makes `stream` the session's `GET` stream (a new `GET` replaces the old one).
    pub fn set_stream(&self, stream: mpsc::Sender<Value>) {
        self.state().stream = Some(stream);
    }

    /// Sends a server-initiated message on the `GET` stream; false when there is none (or it is full).
    pub fn push(&self, message: Value) -> bool {
        let stream = self.state().stream.clone();
        match stream {
            Some(stream) => stream.try_send(message).is_ok(),
            None => false,
        }
    }

    pub fn has_stream(&self) -> bool {
        self.state()
            .stream
            .as_ref()
            .is_some_and(|stream| !stream.is_closed())
    }

    /// Reserves the client's request id `client_id` for a request about to be forwarded; `None` when a request
    /// with that id is already in flight in this session (ids must be unique among a client's open requests,
    /// and a second one would make its answer and its cancellation ambiguous).
    pub fn begin(self: &Arc<Self>, client_id: &Value) -> Option<RequestInFlight> {
        let key = client_id.to_string();
        let mut state = self.state();
        if state.in_flight.contains_key(&key) {
            return None;
        }
        state.in_flight.insert(key.clone(), None);
        Some(RequestInFlight {
            session: Arc::clone(self),
            key,
        })
    }

    /// The child's id of the client's request `client_id`, if it is in flight.
    pub fn child_id_of(&self, client_id: &Value) -> Option<u64> {
        self.state()
            .in_flight
            .get(&client_id.to_string())
            .copied()
            .flatten()
    }

    fn idle_for(&self) -> Duration {
        self.state().last_used.elapsed()
    }
}

/// A client's request id reserved in its session until dropped.
#[derive(Debug)]
pub struct RequestInFlight {
    session: Arc<Session>,
    key: String,
}

impl RequestInFlight {
    /// Records the id the request got at the child (for the client's `notifications/cancelled`).
    pub fn forwarded(&self, child_id: u64) {
        if let Some(entry) = self.session.state().in_flight.get_mut(&self.key) {
            *entry = Some(child_id);
        }
    }
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.session.state().in_flight.remove(&self.key);
    }
}

/// Every open session.
#[derive(Debug)]
pub struct Sessions {
    max: usize,
    max_per_user: usize,
    map: Mutex<HashMap<String, Arc<Session>>>,
}

/// A session limit refused a new session.
#[derive(Debug, PartialEq, Eq)]
pub enum TooManySessions {
    /// `--max-sessions` sessions are open.
    InAll,
    /// The user has `--max-sessions-per-user` sessions open.
    ForUser,
}

impl Sessions {
    pub fn new(max: usize, max_per_user: usize) -> Self {
        Sessions {
            max,
            max_per_user,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session; `owner` of `None` makes the session its own owner (process per session).
    ///
    /// # Errors
    /// [`TooManySessions`] at `--max-sessions`, or at `--max-sessions-per-user` for a user with an id.
    pub fn open(
        &self,
        identity: Identity,
        owner: Option<String>,
        init_params: Value,
    ) -> Result<Arc<Session>, TooManySessions> {
        let mut map = self.map();
        if map.len() >= self.max {
            return Err(TooManySessions::InAll);
        }
        if identity.user_id.is_some()
            && map
                .values()
                .filter(|session| session.identity.user_id == identity.user_id)
                .count()
                >= self.max_per_user
        {
            return Err(TooManySessions::ForUser);
        }
        let id = new_session_id();
        let session = Arc::new(Session {
            owner: owner.unwrap_or_else(|| id.clone()),
            id: id.clone(),
            identity,
            init_params,
            state: Mutex::new(SessionState {
                last_used: Instant::now(),
                stream: None,
                in_flight: HashMap::new(),
            }),
        });
        map.insert(id, Arc::clone(&session));
        Ok(session)
    }

    /// The session `id` if `user_id` is the one that opened it: another user's session is as unknown as a
    /// made-up id.
    pub fn get(&self, id: &str, identity: &Identity) -> Option<Arc<Session>> {
        let session = self.map().get(id).cloned()?;
        (session.identity.user_id == identity.user_id).then_some(session)
    }

    /// A session by id, for routing a child's messages (no caller to check).
    pub fn by_id(&self, id: &str) -> Option<Arc<Session>> {
        self.map().get(id).cloned()
    }

    /// The sessions a process serves.
    pub fn of_owner(&self, owner: &str) -> Vec<Arc<Session>> {
        self.map()
            .values()
            .filter(|session| session.owner == owner)
            .cloned()
            .collect()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.map().remove(id)
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the sessions idle for `timeout`; returns them.
    pub fn expire(&self, timeout: Duration) -> Vec<Arc<Session>> {
        let mut map = self.map();
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, session)| session.idle_for() >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        expired.iter().filter_map(|id| map.remove(id)).collect()
    }
}

/// 128 random bits from the OS, hex.
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
