//! The process registry: at most one child per owner (a user, or a session), at most `--max-processes` in all.
//!
//! A request leases its owner's child ([`Pool::acquire`]) for as long as it is in flight; the lease is what
//! keeps the idle reaper away, so a long tool call is never cut by `--idle-timeout`. Starting a child (spawn and
//! `initialize`, bounded by `--start-timeout`) happens under a per-owner lock, so two requests of one user start
//! one process, and a start slot is reserved before spawning so the limit holds while children start.
//! A child counts against `--max-processes` until it has exited, not merely until it was asked to stop, and
//! every start and stop runs in a tracked task that shutdown waits for.
//! A dead child is simply replaced by the next request that needs it, re-initialized with the requesting
//! session's stored client info; sessions never notice beyond the error their in-flight requests got.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_util::task::TaskTracker;

use crate::cli::ProcessPer;

use super::child::Child;
use super::config::Config;
use super::session::{Session, Sessions};

/// Why no child could serve a request.
#[derive(Debug)]
pub enum AcquireError {
    /// `--max-processes` children run (or start).
    AtCapacity(usize),
    /// The child could not be started or initialized.
    Start(String),
}

/// A child held for one request.
#[derive(Debug)]
pub struct Lease {
    pub child: Arc<Child>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.child.touch();
        self.child.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A reserved start slot: given back when dropped, however the start ends (even if its task is aborted).
struct StartSlot<'a> {
    pool: &'a Pool,
}

impl Drop for StartSlot<'_> {
    fn drop(&mut self) {
        let mut inner = self.pool.inner();
        inner.starting = inner.starting.saturating_sub(1);
    }
}

/// Gives the slot back under a lock the caller already holds (the pool's mutex is not re-entrant).
fn slot_in(inner: &mut Inner, slot: StartSlot<'_>) {
    std::mem::forget(slot);
    inner.starting = inner.starting.saturating_sub(1);
}

#[derive(Default)]
struct Inner {
    children: HashMap<String, Arc<Child>>,
    starting: usize,
    /// Children out of `children` (stopped, idle, dead) that have not exited yet: they still count against
    /// `--max-processes`, since they still run.
    leaving: Vec<Arc<Child>>,
    /// Set by [`Pool::stop_all`]: no child starts any more.
    closed: bool,
}

impl Inner {
    /// Moves dead children out of `children` and forgets those that have exited.
    fn forget_dead(&mut self) {
        let dead: Vec<String> = self
            .children
            .iter()
            .filter(|(_, child)| !child.is_alive())
            .map(|(owner, _)| owner.clone())
            .collect();
        for owner in dead {
            if let Some(child) = self.children.remove(&owner) {
                self.leaving.push(child);
            }
        }
        self.leaving.retain(|child| !child.has_exited());
    }

    /// Processes that still run: the live children and those on their way out.
    fn running(&self) -> usize {
        self.children.len() + self.leaving.len()
    }
}

/// Every child, by owner.
pub struct Pool {
    /// Every start and stop task, so that shutdown waits for them all.
    tasks: TaskTracker,
    config: Arc<Config>,
    sessions: Arc<Sessions>,
    inner: Mutex<Inner>,
    start_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Pool {
    pub fn new(config: Arc<Config>, sessions: Arc<Sessions>) -> Self {
        Pool {
            tasks: TaskTracker::new(),
            config,
            sessions,
            inner: Mutex::new(Inner::default()),
            start_locks: Mutex::new(HashMap::new()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lease_live(&self, owner: &str) -> Option<Lease> {
        let inner = self.inner();
        let child = inner.children.get(owner).filter(|child| child.is_alive())?;
        child.in_flight.fetch_add(1, Ordering::SeqCst);
        Some(Lease {
            child: Arc::clone(child),
        })
    }

    /// The owner's running child, if any (for messages that must not start one).
    pub fn live(&self, owner: &str) -> Option<Arc<Child>> {
        self.inner()
            .children
            .get(owner)
            .filter(|child| child.is_alive())
            .cloned()
    }

    /// The session owner's child, started (and initialized with the session's client info) when there is none.
    ///
    /// The start runs in a task of its own that the request only awaits: a client that goes away mid-start
    /// (its request future dropped) cannot leave a process slot reserved or a child the pool does not know.
    /// The child it started is kept (and idles out like any other).
    ///
    /// # Errors
    /// [`AcquireError`] at the process limit or when the child does not start.
    pub async fn acquire(self: &Arc<Self>, session: &Arc<Session>) -> Result<Lease, AcquireError> {
        if let Some(lease) = self.lease_live(&session.owner) {
            return Ok(lease);
        }
        let pool = Arc::clone(self);
        let session = Arc::clone(session);
        self.tasks
            .spawn(async move { pool.start_for(&session).await })
            .await
            .unwrap_or_else(|_| Err(AcquireError::Start("the start was interrupted".to_owned())))
    }

    /// Starts the owner's child unless another request did meanwhile; inserts it before returning, so it is
    /// counted whether or not anyone still waits for it.
    async fn start_for(&self, session: &Session) -> Result<Lease, AcquireError> {
        let lock = Arc::clone(
            self.start_locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(session.owner.clone())
                .or_default(),
        );
        let _starting = lock.lock().await;
        if let Some(lease) = self.lease_live(&session.owner) {
            return Ok(lease);
        }
        let slot = {
            let mut inner = self.inner();
            if inner.closed {
                return Err(AcquireError::Start(
                    "the bridge is shutting down".to_owned(),
                ));
            }
            inner.forget_dead();
            if inner.running() + inner.starting >= self.config.max_processes {
                return Err(AcquireError::AtCapacity(self.config.max_processes));
            }
            inner.starting += 1;
            StartSlot { pool: self }
        };
        let started = self.start(session).await;
        let mut inner = self.inner();
        slot_in(&mut inner, slot);
        let child = started.map_err(AcquireError::Start)?;
        if inner.closed {
            inner.leaving.push(Arc::clone(&child));
            self.tasks.spawn(async move { child.stop().await });
            return Err(AcquireError::Start(
                "the bridge is shutting down".to_owned(),
            ));
        }
        child.in_flight.fetch_add(1, Ordering::SeqCst);
        inner
            .children
            .insert(session.owner.clone(), Arc::clone(&child));
        Ok(Lease { child })
    }

    async fn start(&self, session: &Session) -> Result<Arc<Child>, String> {
        let per_session =
            (self.config.process_per == ProcessPer::Session).then_some(session.id.as_str());
        let child = Child::spawn(
            &self.config,
            &session.owner,
            &session.identity,
            per_session,
            Arc::clone(&self.sessions),
        )
        .map_err(|error| {
            // The program's path and the OS error are for the operator, not for the client.
            tracing::error!(program = %self.config.program.to_string_lossy(),
                "could not start the MCP server: {error}");
            "could not start the MCP server (the bridge's log says why)".to_owned()
        })?;
        match child
            .initialize(&session.init_params, self.config.start_timeout)
            .await
        {
            Ok(_) => Ok(child),
            Err(problem) => {
                tracing::warn!(pid = child.pid, "MCP server not usable: {problem}");
                self.inner().leaving.push(Arc::clone(&child));
                self.tasks.spawn(async move { child.stop().await });
                Err(format!("the MCP server did not start: {problem}"))
            }
        }
    }

    /// Running children, those being stopped included (until they have exited).
    pub fn processes(&self) -> usize {
        let mut inner = self.inner();
        inner.forget_dead();
        inner.running()
    }

    /// Stops the owner's child now (its session was deleted, in per-session mode).
    pub fn stop_owner(&self, owner: &str) {
        let mut inner = self.inner();
        if let Some(child) = inner.children.remove(owner) {
            inner.leaving.push(Arc::clone(&child));
            self.tasks.spawn(async move { child.stop().await });
        }
    }

    /// Stops children idle for `--idle-timeout`, forgets dead ones, closes sessions idle for
    /// `--session-idle-timeout` (and, per session, their processes).
    pub fn reap(&self) {
        let idle = {
            let mut inner = self.inner();
            inner.forget_dead();
            let mut idle = Vec::new();
            inner.children.retain(|_, child| {
                if child.in_flight.load(Ordering::SeqCst) == 0
                    && child.idle_for() >= self.config.idle_timeout
                {
                    idle.push(Arc::clone(child));
                    return false;
                }
                true
            });
            inner.leaving.extend(idle.iter().cloned());
            idle
        };
        for child in idle {
            tracing::info!(
                pid = child.pid,
                "MCP server process idle for --idle-timeout: stopping it"
            );
            self.tasks.spawn(async move { child.stop().await });
        }
        for session in self.sessions.expire(self.config.session_idle_timeout) {
            tracing::info!(session = %session.id, "session idle for --session-idle-timeout: closed");
            if self.config.process_per == ProcessPer::Session {
                self.stop_owner(&session.owner);
            }
        }
        self.start_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, lock| Arc::strong_count(lock) > 1 || lock.try_lock().is_err());
    }

    /// Stops every child (the bridge is shutting down), all at once, and waits for the starts and stops already
    /// under way, so that no child outlives the bridge.
    pub async fn stop_all(&self) {
        let children: Vec<Arc<Child>> = {
            let mut inner = self.inner();
            inner.closed = true;
            inner.children.drain().map(|(_, child)| child).collect()
        };
        futures_util::future::join_all(children.iter().map(|child| child.stop())).await;
        self.tasks.close();
        self.tasks.wait().await;
    }
}
