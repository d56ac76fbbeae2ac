//! [`LogLimit`]: at most one log line per interval from one place, counting what it held back.
//!
//! When the disk fills up, every run's writes fail at once; one line per failure buried the log
//! (and filled what was left of the disk) at hundreds of lines a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one line through per interval and counts the ones it held back.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimit {
    /// At most one line a second.
    pub const fn every_second() -> Self {
        Self::every(Duration::from_secs(1))
    }

    /// At most one line per `every`.
    pub const fn every(every: Duration) -> Self {
        Self { every, state: Mutex::new((None, 0)) }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held back since the last
    /// one; `None` when this one must be held back.
    pub fn allow(&self) -> Option<u64> {
        let mut state = crate::sync::lock(&self.state);
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = std::mem::take(&mut state.1);
                state.0 = Some(now);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_reporting_how_many_were_held_back() {
        let limit = LogLimit::every(Duration::from_secs(3600));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!((limit.allow(), limit.allow()), (None, None));
        // The interval has passed: the next line goes through and says two were held back.
        crate::sync::lock(&limit.state).0 = Instant::now().checked_sub(Duration::from_secs(7200));
        assert_eq!(limit.allow(), Some(2));
        assert_eq!(limit.allow(), None);
    }
}
