//! Password checks with a bounded cost: a fixed number at once, a bounded queue, and memory handed back after
//! each.
//!
//! # Why
//! An argon2id check is deliberately expensive: the default parameters take 19 MiB and tens of milliseconds of
//! one core. The login form is anonymous, so without a bound every wrong-password post starts another one; 64
//! parallel posts held 1.2 GiB, and the memory stayed with the process afterwards (glibc keeps freed blocks of
//! this size in per-thread arenas once its dynamic mmap threshold has risen past them). Here:
//!
//! * the checks run on [`PasswordCheckLimits::concurrent`] dedicated threads, started on first use, at a lower
//!   scheduling priority (nice 10 on Linux): a storm of checks then takes the CPU `/verify` leaves idle rather
//!   than half of it, and a login still goes through at once on an idle machine;
//! * at most [`PasswordCheckLimits::queued`] more wait for a thread; any further check is refused at once with
//!   [`PasswordCheckBusy`], which the service answers with 503 and `Retry-After`, so nothing queues without
//!   limit. A queued check whose caller has gone (the client hung up) is dropped unstarted;
//! * the argon2 working memory is allocated by this module rather than by the `argon2` crate, with a capacity
//!   above glibc's largest dynamic mmap threshold (32 MiB on 64-bit), so that every allocation is its own
//!   mapping and is returned to the operating system when the check ends. Only the blocks the parameters need
//!   are ever touched, so the resident cost of a check is still its `m` KiB.
//!
//! A check that has started holds its place until argon2 returns, even if its caller stopped waiting: the
//! admission travels with the job, so the bounds hold for abandoned checks too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use tokio::sync::oneshot;

/// Blocks reserved (not touched) for every check: 33 MiB, above glibc's `DEFAULT_MMAP_THRESHOLD_MAX`, so the
/// allocation is always a fresh mapping that `free` unmaps.
const RESERVED_BLOCKS: usize = 33 * 1024;

// Above glibc's largest dynamic mmap threshold (32 MiB on 64-bit), or freed argon2 memory stays in the allocator's
// arenas again (BENCHMARKS.md, "Login storm"); and not much more, although it is only address space.
const _: () = assert!(
    RESERVED_BLOCKS * Block::SIZE > 32 * 1024 * 1024
        && RESERVED_BLOCKS * Block::SIZE <= 64 * 1024 * 1024
);

/// The niceness of the checking threads (Linux): below `/verify`'s workers, so that they get the CPU first.
#[cfg(target_os = "linux")]
const CHECK_NICENESS: i32 = 10;

/// How many password checks may run and wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordCheckLimits {
    /// Checks running at once (one thread each). Default: the number of cores the process may use.
    pub concurrent: usize,
    /// Checks waiting for a thread; beyond this, a check is refused at once. Default: 8 per running check.
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

/// Every place is taken: the check was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are running; retry after {} s", retry_after.as_secs())]
pub struct PasswordCheckBusy {
    /// How long the caller should wait.
    pub retry_after: Duration,
}

/// The bounded pool of password checks. Clones share the bound and the threads.
#[derive(Clone, Debug)]
pub struct PasswordChecker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limits: PasswordCheckLimits,
    /// Checks admitted and not finished: running plus waiting.
    admitted: AtomicUsize,
    /// The queue of the checking threads, started on first use.
    jobs: OnceLock<mpsc::Sender<Job>>,
}

/// One admitted check; dropping it (when the check ends, wherever that is) frees its place.
#[derive(Debug)]
struct Admission(Arc<Inner>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
struct Job {
    hash: String,
    password: String,
    answer: oneshot::Sender<bool>,
    _admission: Admission,
}

impl PasswordChecker {
    /// A pool with these limits. Its threads start with the first check.
    pub fn new(limits: PasswordCheckLimits) -> Self {
        PasswordChecker {
            inner: Arc::new(Inner {
                limits,
                admitted: AtomicUsize::new(0),
                jobs: OnceLock::new(),
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

    /// Whether `password` matches the PHC `hash`, computed on one of the pool's threads once one is free. A hash
    /// that does not parse matches nothing.
    ///
    /// # Errors
    /// [`PasswordCheckBusy`] when every running and waiting place is taken (or the threads could not start).
    pub async fn verify(&self, hash: String, password: String) -> Result<bool, PasswordCheckBusy> {
        let busy = PasswordCheckBusy {
            retry_after: self.inner.limits.retry_after,
        };
        let admission = self.admit().ok_or(busy)?;
        let (answer, result) = oneshot::channel();
        let job = Job {
            hash,
            password,
            answer,
            _admission: admission,
        };
        self.jobs().send(job).map_err(|_| busy)?;
        result.await.map_err(|_| busy)
    }

    fn admit(&self) -> Option<Admission> {
        let limit = self
            .inner
            .limits
            .concurrent
            .saturating_add(self.inner.limits.queued);
        let before = self.inner.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Admission(Arc::clone(&self.inner));
        (before < limit).then_some(admission)
    }

    fn jobs(&self) -> &mpsc::Sender<Job> {
        self.inner.jobs.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.inner.limits.concurrent {
                let rx = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name(format!("password-check-{i}"))
                    .spawn(move || work(&rx));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "a password-check thread could not start");
                }
            }
            tx
        })
    }
}

/// A checking thread: lowers its priority, then runs jobs until every sender is gone.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    loop {
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(Job {
            hash,
            password,
            answer,
            _admission: admission,
        }) = next
        else {
            return;
        };
        if answer.is_closed() {
            // The caller is gone: nobody would read the answer.
            continue;
        }
        let matched = verify_phc(&hash, password.as_bytes());
        // The place is free before the caller hears the answer, so a caller that retries at once finds it free.
        drop(admission);
        let _ = answer.send(matched);
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), CHECK_NICENESS) {
        tracing::debug!(error = %e, "could not lower the password-check thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_kept_as_given_with_at_least_one_thread() {
        let checker = PasswordChecker::new(PasswordCheckLimits::new(3, 5));
        assert_eq!(checker.limits(), PasswordCheckLimits::new(3, 5));
        assert_eq!(
            (checker.limits().concurrent, checker.limits().queued),
            (3, 5)
        );
        assert_eq!(PasswordCheckLimits::new(0, 0).concurrent, 1);
        assert_eq!(checker.in_flight(), 0);
    }

    #[test]
    fn a_hash_that_does_not_parse_or_is_not_argon2_matches_nothing() {
        assert!(!verify_phc("", b"x"));
        assert!(
            !verify_phc("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ", b"x"),
            "no hash part"
        );
        assert!(!verify_phc(
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            b"x"
        ));
    }
}
