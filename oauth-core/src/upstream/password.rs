//! Password checks with a bounded cost: a fixed number at once, a bounded queue, and memory handed back after
//! each.
//!
//! # Why
//! An argon2id check is deliberately expensive: the default parameters take 19 MiB and tens of milliseconds of
//! one core. The login form is anonymous, so without a bound every wrong-password post starts another one; 64
//! parallel posts held 1.2 GiB, and the memory stayed with the process afterwards (glibc keeps freed blocks of
//! this size in per-thread arenas once its dynamic mmap threshold has risen past them). Here:
//!
//! * at most [`PasswordCheckLimits::concurrent`] checks run at once (a semaphore), each on the blocking pool;
//! * at most [`PasswordCheckLimits::queued`] more wait for a turn; any further check is refused at once with
//!   [`PasswordCheckBusy`], which the service answers with 503 and `Retry-After`, so nothing queues without
//!   limit and CPU stays for `/verify`;
//! * the argon2 working memory is allocated by this module rather than by the `argon2` crate, with a capacity
//!   above glibc's largest dynamic mmap threshold (32 MiB on 64-bit), so that every allocation is its own
//!   mapping and is returned to the operating system when the check ends. Only the blocks the parameters need
//!   are ever touched, so the resident cost of a check is still its `m` KiB.
//!
//! A check that its caller stops waiting for (a client that hung up) still holds its turn until argon2 returns:
//! the permit and the admission travel into the blocking task, so the bounds hold for abandoned checks too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

/// Blocks reserved (not touched) for every check: 33 MiB, above glibc's `DEFAULT_MMAP_THRESHOLD_MAX`, so the
/// allocation is always a fresh mapping that `free` unmaps.
const RESERVED_BLOCKS: usize = 33 * 1024;

/// How many password checks may run and wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordCheckLimits {
    /// Checks running at once. Default: the number of cores the process may use.
    pub concurrent: usize,
    /// Checks waiting for a turn; beyond this, a check is refused at once. Default: 8 per running check.
    pub queued: usize,
    /// What to tell a refused caller to wait before retrying.
    pub retry_after: Duration,
}

impl Default for PasswordCheckLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        PasswordCheckLimits::new(cores, cores.saturating_mul(8))
    }
}

impl PasswordCheckLimits {
    /// `concurrent` checks at once (at least one) and `queued` waiting.
    pub fn new(concurrent: usize, queued: usize) -> Self {
        PasswordCheckLimits {
            concurrent: concurrent.max(1),
            queued,
            retry_after: Duration::from_secs(2),
        }
    }
}

/// Every turn is taken: the check was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are running; retry after {} s", retry_after.as_secs())]
pub struct PasswordCheckBusy {
    /// How long the caller should wait.
    pub retry_after: Duration,
}

/// The bounded pool of password checks. Clones share the bound.
#[derive(Clone, Debug)]
pub struct PasswordChecker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limits: PasswordCheckLimits,
    turns: Arc<Semaphore>,
    /// Checks admitted and not finished: running plus waiting.
    admitted: AtomicUsize,
}

/// One admitted check; dropping it (when the check ends, wherever that is) frees its place.
struct Admission(Arc<Inner>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordChecker {
    /// A pool with these limits.
    pub fn new(limits: PasswordCheckLimits) -> Self {
        PasswordChecker {
            inner: Arc::new(Inner {
                limits,
                turns: Arc::new(Semaphore::new(limits.concurrent)),
                admitted: AtomicUsize::new(0),
            }),
        }
    }

    /// The limits.
    pub fn limits(&self) -> PasswordCheckLimits {
        self.inner.limits
    }

    /// Checks admitted and not yet finished (running and waiting).
    pub fn in_flight(&self) -> usize {
        self.inner.admitted.load(Ordering::Acquire)
    }

    /// Whether `password` matches the PHC `hash`, computed on the blocking pool once a turn is free. A hash that
    /// does not parse matches nothing.
    ///
    /// # Errors
    /// [`PasswordCheckBusy`] when every running and waiting place is taken.
    pub async fn verify(&self, hash: String, password: String) -> Result<bool, PasswordCheckBusy> {
        let admission = self.admit()?;
        let busy = PasswordCheckBusy {
            retry_after: self.inner.limits.retry_after,
        };
        let turn = Arc::clone(&self.inner.turns)
            .acquire_owned()
            .await
            .map_err(|_| busy)?;
        tokio::task::spawn_blocking(move || {
            let matched = verify_phc(&hash, password.as_bytes());
            drop((turn, admission));
            matched
        })
        .await
        .map_err(|_| busy)
    }

    fn admit(&self) -> Result<Admission, PasswordCheckBusy> {
        let limit = self
            .inner
            .limits
            .concurrent
            .saturating_add(self.inner.limits.queued);
        let before = self.inner.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(Arc::clone(&self.inner));
        if before >= limit {
            return Err(PasswordCheckBusy {
                retry_after: self.inner.limits.retry_after,
            });
        }
        Ok(admission)
    }
}

/// Whether `password` matches the PHC-format argon2 `hash`, with working memory this module allocates (see the
/// module documentation), compared in constant time.
pub(crate) fn verify_phc(hash: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let Some(expected) = parsed.hash else {
        return false;
    };
    let Some(salt) = parsed.salt else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let needed = params.block_count();
    let mut blocks: Vec<Block> = Vec::with_capacity(needed.max(RESERVED_BLOCKS));
    blocks.resize(needed, Block::new());
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        out,
        &mut blocks,
    );
    drop(blocks);
    computed.is_ok() && bool::from(expected.as_bytes().ct_eq(out))
}
