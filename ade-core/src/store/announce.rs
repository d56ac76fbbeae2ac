//! Announcements between processes that share the stores (SPEC §6, PostgreSQL `LISTEN`): what
//! another instance did that this one must react to.

use futures::stream::BoxStream;

use crate::event::RunId;

/// Something another process (or this one, through the database) announced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Announcement {
    /// Events of `run_id` up to `last_sequence` were appended: local subscribers may read them.
    Appended {
        /// The run.
        run_id: RunId,
        /// The last sequence of the appended batch.
        last_sequence: u64,
    },
    /// A queued run may be claimed.
    Work,
    /// Someone asked to cancel `run_id`.
    CancelRequested(RunId),
    /// The listener lost its connection and has a new one: announcements may have been missed,
    /// so whoever waits on one should look at the stores again.
    Resync,
}

#[cfg(feature = "postgres")]
impl Announcement {
    /// Parses a notification's payload `<run_id>:<last sequence>`.
    pub(crate) fn appended(payload: &str) -> Option<Self> {
        let (run_id, sequence) = payload.split_once(':')?;
        Some(Self::Appended { run_id: run_id.parse().ok()?, last_sequence: sequence.parse().ok()? })
    }

    /// Parses a control notification's payload (`cancel:<run_id>`).
    pub(crate) fn control(payload: &str) -> Option<Self> {
        let run_id = payload.strip_prefix("cancel:")?;
        Some(Self::CancelRequested(run_id.parse().ok()?))
    }
}

/// The announcements a process receives, in the order they were made; it never ends while the
/// process lives.
pub type Announcements = BoxStream<'static, Announcement>;

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_garbage_is_ignored() {
        let run_id = RunId::new();
        assert_eq!(
            Announcement::appended(&format!("{run_id}:42")),
            Some(Announcement::Appended { run_id, last_sequence: 42 })
        );
        assert_eq!(Announcement::control(&format!("cancel:{run_id}")), Some(Announcement::CancelRequested(run_id)));
        for garbage in ["", "nope", "run_x:1", &format!("{run_id}:-1"), &format!("{run_id}"), "cancel:"] {
            assert_eq!(Announcement::appended(garbage), None, "{garbage}");
            assert_eq!(Announcement::control(garbage), None, "{garbage}");
        }
    }
}
