//! A per-second budget of lines, for what anonymous callers can make the service write.
//!
//! Every `/verify` refusal is logged at the default level and, with the audit trail on, written to it. A
//! refusal costs an anonymous caller nothing (no token, or any string as one), so without a bound a flood of
//! them is a flood of lines: disk filled, the log's reader drowned, and the gate slowed by its own writing
//! (measured: a 401 storm ran at 71 % of the no-op's rate with a line per refusal). A [`LineBudget`] lets
//! through at most `per_second` lines in each wall-clock second and counts the rest, and the first line of a
//! later second reports how many were left out, so nothing is lost silently and the cost per second is
//! bounded by what the operator set (`[gate] refusals_logged_per_sec`).
//!
//! The counters are atomics, not a lock: at a second's turn two threads may both let a line through, so the
//! bound holds within a line or two, which is all a log needs.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// At most `per_second` lines a second (0: no limit); see the [module documentation](self).
#[derive(Debug)]
pub struct LineBudget {
    per_second: u32,
    /// The second (Unix time) the counts below are for.
    second: AtomicU64,
    /// Lines let through in `second`.
    used: AtomicU32,
    /// Lines refused since the last report.
    left_out: AtomicU64,
}

/// What [`LineBudget::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write the line; `left_out` lines were refused before it (since the last report), which the caller
    /// reports first.
    Write {
        /// Lines left out since the last report.
        left_out: u64,
    },
    /// Leave the line out (it is counted).
    Skip,
}

impl LineBudget {
    /// A budget of `per_second` lines a second; 0 lets every line through.
    pub fn new(per_second: u32) -> Self {
        LineBudget {
            per_second,
            second: AtomicU64::new(0),
            used: AtomicU32::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written in the second `now_secs` (Unix time).
    pub fn admit(&self, now_secs: u64) -> Admit {
        if self.per_second == 0 {
            return Admit::Write { left_out: 0 };
        }
        let second = self.second.load(Ordering::Relaxed);
        if now_secs != second
            && self
                .second
                .compare_exchange(second, now_secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Admit::Write {
                left_out: self.left_out.swap(0, Ordering::Relaxed),
            }
        } else {
            self.left_out.fetch_add(1, Ordering::Relaxed);
            Admit::Skip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Admit, LineBudget};

    #[test]
    fn at_most_the_budget_a_second_and_the_rest_reported_in_a_later_second() {
        let budget = LineBudget::new(3);
        let first: Vec<Admit> = (0..5).map(|_| budget.admit(100)).collect();
        assert_eq!(
            first,
            [
                Admit::Write { left_out: 0 },
                Admit::Write { left_out: 0 },
                Admit::Write { left_out: 0 },
                Admit::Skip,
                Admit::Skip
            ]
        );
        // The next second: the two left out are reported with its first line, once.
        assert_eq!(budget.admit(101), Admit::Write { left_out: 2 });
        assert_eq!(budget.admit(101), Admit::Write { left_out: 0 });
        assert_eq!(budget.admit(101), Admit::Write { left_out: 0 });
        assert_eq!(budget.admit(101), Admit::Skip);
        // Seconds later, still reported.
        assert_eq!(budget.admit(250), Admit::Write { left_out: 1 });
    }

    #[test]
    fn zero_is_no_limit() {
        let budget = LineBudget::new(0);
        for _ in 0..10_000 {
            assert_eq!(budget.admit(7), Admit::Write { left_out: 0 });
        }
    }
}
