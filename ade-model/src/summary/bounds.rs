//! The bounds of a run summary (issue 16): `run.completed` carries the summary, and no event may
//! be larger than 1 MiB (SPEC §9), or the run could never end. The configuration (its fields) and
//! the engine (file names, issue codes, messages) decide how large a summary gets, so every part
//! that grows with them has a cap below; what a cap cuts is counted in [`RunSummary::truncated`].
//!
//! Sizes are bytes of JSON, escapes included, so the caps add up to a bound: with every one of
//! them reached a summary takes about 700 KiB, which leaves room in 1 MiB for the rest of
//! `run.completed` (its `failure`, capped alike, and the envelope). What else `run.completed`
//! carries (`artifacts.output_paths`) is not the summary's: a run whose completion is still too
//! large ends `failed` with a small one (`completion_too_large`, see the runtime).

use std::collections::BTreeMap;

use super::{FieldBreakdown, FileBreakdown, RunSummary, SummaryTruncation};
use crate::run::Failure;

/// Longest name, label, issue code, file name or version in a summary, in bytes of JSON: ample
/// for names, and small enough for hundreds of them.
pub const MAX_TEXT_BYTES: usize = 256;
/// Longest failure message (`run.failure_message`, and `failure.message` of `run.completed` and
/// of the run), in bytes of JSON: as long as a console line may be (SPEC §9).
pub const MAX_FAILURE_MESSAGE_BYTES: usize = 16 * 1024;
/// Most codes in `core.issue_counts_by_code`; the most frequent are kept. An engine's codes are a
/// vocabulary of tens; more means it writes data into them.
pub const MAX_CODES: usize = 100;
/// Most codes in each `issue_counts_by_code` of `by_file` and `by_field`; the most frequent are kept.
pub const MAX_ENTRY_CODES: usize = 10;
/// Bytes of JSON `breakdowns.by_file` may take; the files after (sorted by name) are left out.
/// About 700 files with plain names and a few codes each.
pub const MAX_BY_FILE_BYTES: usize = 128 * 1024;
/// Bytes of JSON `breakdowns.by_field` may take; the fields after (in configuration order) are
/// left out. About 2,000 fields with plain names and a few codes each: more than the fields a
/// configuration may have by default ([`DEFAULT_MAX_FIELDS`](crate::config::DEFAULT_MAX_FIELDS)).
pub const MAX_BY_FIELD_BYTES: usize = 512 * 1024;

/// The places of the summary's lists, as `truncated` names them.
const BY_FILE: &str = "breakdowns.by_file";
const BY_FIELD: &str = "breakdowns.by_field";

impl RunSummary {
    /// Keeps the summary within the bounds of this module, adding what it cuts to `truncated`.
    /// A summary already within them is left as it is.
    pub(crate) fn bound(&mut self) {
        let mut cuts = self.truncated.take().unwrap_or_default();
        let run = &mut self.run;
        let texts = [
            ("run.failure_code", run.failure_code.as_mut(), MAX_TEXT_BYTES),
            ("run.failure_message", run.failure_message.as_mut(), MAX_FAILURE_MESSAGE_BYTES),
            ("run.configuration_version", run.configuration_version.as_mut(), MAX_TEXT_BYTES),
            ("run.engine_version", run.engine_version.as_mut(), MAX_TEXT_BYTES),
            ("run.config_version", run.config_version.as_mut(), MAX_TEXT_BYTES),
        ];
        for (place, text, max) in texts {
            if let Some(text) = text {
                cuts.text(place, text, max);
            }
        }
        cuts.codes("core.issue_counts_by_code", &mut self.core.issue_counts_by_code, MAX_CODES);
        let files = std::mem::take(&mut self.breakdowns.by_file);
        self.breakdowns.by_file = cuts.list(BY_FILE, files, MAX_BY_FILE_BYTES, |cuts, file: &mut FileBreakdown| {
            cuts.text("breakdowns.by_file[].source_file", &mut file.source_file, MAX_TEXT_BYTES);
            cuts.codes("breakdowns.by_file[].issue_counts_by_code", &mut file.issue_counts_by_code, MAX_ENTRY_CODES);
        });
        let fields = std::mem::take(&mut self.breakdowns.by_field);
        self.breakdowns.by_field =
            cuts.list(BY_FIELD, fields, MAX_BY_FIELD_BYTES, |cuts, field: &mut FieldBreakdown| {
                cuts.text("breakdowns.by_field[].field", &mut field.field, MAX_TEXT_BYTES);
                cuts.text("breakdowns.by_field[].label", &mut field.label, MAX_TEXT_BYTES);
                let codes = &mut field.issue_counts_by_code;
                cuts.codes("breakdowns.by_field[].issue_counts_by_code", codes, MAX_ENTRY_CODES);
            });
        self.truncated = (!cuts.omitted.is_empty() || !cuts.shortened.is_empty()).then_some(cuts);
    }

    /// The smallest form of this (bounded) summary, for a run whose `run.completed` would not fit
    /// even so: `run` and the totals of `core`, without the codes or the breakdowns, which
    /// `truncated` counts as left out.
    pub fn minimal(&self) -> RunSummary {
        let mut cuts = self.truncated.clone().unwrap_or_default();
        // Cuts inside entries that are no longer there say nothing.
        cuts.omitted.retain(|place, _| !place.contains("[]"));
        cuts.shortened.retain(|place, _| !place.contains("[]"));
        let left_out = [
            ("core.issue_counts_by_code", self.core.issue_counts_by_code.len()),
            (BY_FILE, self.breakdowns.by_file.len()),
            (BY_FIELD, self.breakdowns.by_field.len()),
        ];
        for (place, n) in left_out {
            cuts.omit(place, n);
        }
        let mut core = self.core.clone();
        core.issue_counts_by_code.clear();
        RunSummary {
            schema: self.schema.clone(),
            version: self.version.clone(),
            run: self.run.clone(),
            core,
            breakdowns: Default::default(),
            truncated: Some(cuts),
        }
    }
}

impl SummaryTruncation {
    /// Counts `n` entries left out at `place`.
    fn omit(&mut self, place: &str, n: usize) {
        if n > 0 {
            let count = self.omitted.entry(place.to_owned()).or_default();
            *count = count.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    /// Cuts `text` to `max` bytes of JSON, counting it at `place`.
    fn text(&mut self, place: &str, text: &mut String, max: usize) {
        if shorten(text, max) {
            let count = self.shortened.entry(place.to_owned()).or_default();
            *count = count.saturating_add(1);
        }
    }

    /// Keeps the `max` most frequent codes, and cuts each to [`MAX_TEXT_BYTES`] (adding up the
    /// counts of codes cut alike).
    fn codes(&mut self, place: &str, codes: &mut BTreeMap<String, u64>, max: usize) {
        if codes.len() > max {
            let mut by_count: Vec<(String, u64)> = std::mem::take(codes).into_iter().collect();
            // Most frequent first; ties by code, so the cut does not depend on anything else.
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            self.omit(place, by_count.len() - max);
            by_count.truncate(max);
            *codes = by_count.into_iter().collect();
        }
        if codes.keys().any(|code| json_len(code) > MAX_TEXT_BYTES) {
            let mut shortened = BTreeMap::new();
            for (mut code, n) in std::mem::take(codes) {
                self.text(place, &mut code, MAX_TEXT_BYTES);
                let count: &mut u64 = shortened.entry(code).or_default();
                *count = count.saturating_add(n);
            }
            *codes = shortened;
        }
    }

    /// Bounds each entry with `bound_entry`, and keeps entries, in order, while the list takes at
    /// most `max_bytes` of JSON; counts the rest as left out at `place`.
    fn list<T: serde::Serialize>(
        &mut self,
        place: &str,
        entries: Vec<T>,
        max_bytes: usize,
        mut bound_entry: impl FnMut(&mut Self, &mut T),
    ) -> Vec<T> {
        let total = entries.len();
        let mut kept = Vec::new();
        let mut used = 2; // `[]`
        for mut entry in entries {
            bound_entry(self, &mut entry);
            let size = json_size(&entry) + usize::from(!kept.is_empty()); // and its comma
            if used + size > max_bytes {
                break;
            }
            used += size;
            kept.push(entry);
        }
        self.omit(place, total - kept.len());
        kept
    }
}

/// Cuts `failure`'s code and message as a summary's `run.failure_code` and `run.failure_message`
/// are, so that `run.completed.failure`, the run's `failure` and its summary say the same; whether
/// anything was cut.
pub fn bound_failure(failure: &mut Failure) -> bool {
    let code = shorten(&mut failure.code, MAX_TEXT_BYTES);
    shorten(&mut failure.message, MAX_FAILURE_MESSAGE_BYTES) || code
}

/// The marker a cut text ends with, without its number.
const MARKER: &str = "…[truncated  bytes]";

/// Cuts `text` on a character boundary so that it takes at most `max` bytes of JSON (`max` ≥ 64),
/// marked `…[truncated N bytes]` (N: the bytes of text left out, as console lines are); whether
/// it was cut.
pub fn shorten(text: &mut String, max: usize) -> bool {
    if json_len(text) <= max {
        return false;
    }
    // The marker is its own JSON, and N has at most 20 digits.
    let room = max.saturating_sub(MARKER.len() + 20);
    let mut used = 0;
    let mut cut = 0;
    for (at, c) in text.char_indices() {
        used += char_json_len(c);
        if used > room {
            break;
        }
        cut = at + c.len_utf8();
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("…[truncated {dropped} bytes]"));
    true
}

/// The bytes `text` takes inside a JSON string, as serde_json escapes it.
fn json_len(text: &str) -> usize {
    text.chars().map(char_json_len).sum()
}

/// The bytes `c` takes inside a JSON string: `\"`, `\\` and `\n`-like escapes take 2, other
/// control characters `\u00XX` 6, anything else its UTF-8.
fn char_json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if c < ' ' => 6,
        c => c.len_utf8(),
    }
}

/// The bytes of `value`'s JSON.
fn json_size<T: serde::Serialize>(value: &T) -> usize {
    /// Counts what is written, and keeps nothing.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Summaries always serialize (string keys, no fallible types); an error would only undercount.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::event::{
        Artifacts, ConfigurationId, Envelope, EventId, EventPayload, EventSource, Execution, RunCompleted, RunId,
        Severity, StoredEvent, Timestamp, WorkspaceId,
    };
    use crate::run::{RunOutcome, RunStatus, Stage};
    use crate::summary::{ConfiguredField, RunOutcomeInfo, RunSummaryBuilder};

    #[test]
    fn texts_are_cut_to_their_json_size_on_a_character_boundary_and_marked() {
        let mut short = "plain".to_owned();
        assert!(!shorten(&mut short, 64));
        assert_eq!(short, "plain");

        let mut long = "é".repeat(1000);
        assert!(shorten(&mut long, 256));
        assert!(json_len(&long) <= 256, "{}", json_len(&long));
        assert!(long.starts_with("éé") && long.ends_with(" bytes]"), "{long}");
        let kept = long.find('…').expect("marker");
        assert_eq!(long[kept..], format!("…[truncated {} bytes]", 2000 - kept));

        // Escapes count: a control character takes 6 bytes of JSON.
        let mut control = "\u{1}".repeat(100);
        assert_eq!(json_len(&control), 600);
        assert!(shorten(&mut control, 256));
        let json = serde_json::to_string(&control).expect("json");
        assert!(json.len() - 2 <= 256, "{}", json.len());
        assert_eq!(json_len("a\"\\\n\u{1f}é"), 1 + 2 + 2 + 2 + 6 + 2);
    }

    /// A configuration's worth of fields named `field_00000`…, labelled "Field number …".
    fn fields(n: usize, name: impl Fn(usize) -> String) -> Vec<ConfiguredField> {
        (0..n).map(|i| ConfiguredField::new(name(i), Some(format!("Field number {i}")), i % 2 == 0)).collect()
    }

    fn builder(fields: Vec<ConfiguredField>) -> RunSummaryBuilder {
        let workspace = WorkspaceId::new("acme").expect("valid");
        RunSummaryBuilder::new(RunId::new(), workspace, ConfigurationId::new("members").expect("valid"), fields)
    }

    /// `counts` of `n` codes, each of `code(i)`.
    fn counts(n: u64, code: impl Fn(u64) -> String) -> BTreeMap<String, u64> {
        (0..n).map(|i| (code(i), u64::MAX - i)).collect()
    }

    /// The bytes of the `run.completed` event carrying `summary`, with `failure`.
    fn completion_bytes(summary: &RunSummary, failure: Option<Failure>) -> usize {
        let completed = RunCompleted {
            status: RunOutcome::Failed,
            failure,
            execution: Execution {
                exit_code: Some(i32::MIN),
                started_at: Some(Timestamp::now()),
                completed_at: Timestamp::now(),
                duration_ms: u64::MAX,
            },
            artifacts: Artifacts { output_paths: Vec::new(), events_path: "logs/events.ndjson".to_owned() },
            summary: summary.clone(),
            event_count: u64::MAX,
            extra: Default::default(),
        };
        let envelope = Envelope {
            event_id: EventId::new(),
            created_at: Timestamp::now(),
            sequence: u64::MAX,
            source: EventSource::Api,
            workspace_id: summary.run.workspace_id.clone(),
            configuration_id: summary.run.configuration_id.clone(),
            run_id: summary.run.id,
            build_id: None,
            payload: EventPayload::RunCompleted(Box::new(completed)),
        };
        StoredEvent::new(envelope).expect("serializable").json().len()
    }

    #[test]
    fn with_every_cap_reached_run_completed_still_fits_in_one_event() {
        // The worst of everything: names of control characters (6 bytes of JSON each), thousands
        // of fields, files and codes, counts and scores at their longest, a huge failure.
        let worst = |i: usize| format!("{i:06}{}", "\u{1}".repeat(2000));
        let mut summary = builder(Vec::new()).summary(Some(&RunOutcomeInfo {
            status: RunStatus::Failed,
            failure: Some(Failure { stage: Stage::Run, code: worst(0), message: "\u{1}".repeat(1 << 20) }),
            completed_at: Some(Timestamp::now()),
        }));
        let code = |i: u64| format!("{i:06}{}", "\u{2}".repeat(1000));
        let severities =
            BTreeMap::from([(Severity::Info, u64::MAX), (Severity::Warning, u64::MAX), (Severity::Error, u64::MAX)]);
        summary.run.failure_code = Some(worst(0));
        summary.run.failure_message = Some("\u{1}".repeat(1 << 20));
        summary.run.engine_version = Some(worst(1));
        summary.run.config_version = Some(worst(2));
        summary.run.configuration_version = Some(worst(3));
        summary.core.issue_counts_by_code = counts(5_000, code);
        summary.core.issue_counts_by_severity = severities.clone();
        summary.breakdowns.by_field = (0..3_000)
            .map(|i| FieldBreakdown {
                field: worst(i),
                label: worst(i),
                required: true,
                mapped: true,
                max_score: Some(-f64::MAX),
                validation_issue_count_total: u64::MAX,
                issue_counts_by_severity: severities.clone(),
                issue_counts_by_code: counts(50, code),
            })
            .collect();
        summary.breakdowns.by_file = (0..3_000)
            .map(|i| FileBreakdown {
                source_file: worst(i),
                table_count: u64::MAX,
                row_count: u64::MAX,
                validation_issue_count_total: u64::MAX,
                issue_counts_by_severity: severities.clone(),
                issue_counts_by_code: counts(50, code),
            })
            .collect();
        summary.truncated = None;
        summary.bound();

        let mut failure = Failure { stage: Stage::Run, code: worst(0), message: "\u{1}".repeat(1 << 20) };
        assert!(bound_failure(&mut failure));
        let bytes = completion_bytes(&summary, Some(failure));
        assert!(bytes < 800 * 1024, "run.completed is {bytes} bytes");
        let truncated = summary.truncated.as_ref().expect("marked");
        for place in [BY_FIELD, BY_FILE, "core.issue_counts_by_code"] {
            assert!(truncated.omitted.get(place).is_some_and(|n| *n > 0), "{place}: {truncated:?}");
        }
        for place in ["run.failure_message", "run.engine_version", "breakdowns.by_field[].label"] {
            assert!(truncated.shortened.get(place).is_some_and(|n| *n > 0), "{place}: {truncated:?}");
        }
        assert_eq!(
            truncated.omitted.get(BY_FIELD).copied(),
            Some(3_000 - summary.breakdowns.by_field.len() as u64),
            "what is listed and what is left out add up"
        );

        // Bounding a bounded summary changes nothing; the minimal one is small and says what it left out.
        let again = {
            let mut again = summary.clone();
            again.bound();
            again
        };
        assert_eq!(again, summary);
        let minimal = summary.minimal();
        assert!(completion_bytes(&minimal, None) < 32 * 1024);
        let omitted = &minimal.truncated.as_ref().expect("marked").omitted;
        assert_eq!(omitted.get(BY_FIELD), Some(&3_000));
        assert_eq!(omitted.get(BY_FILE), Some(&3_000));
        assert_eq!(omitted.get("core.issue_counts_by_code"), Some(&5_000));
        assert!(omitted.keys().all(|place| !place.contains("[]")), "{omitted:?}");
        assert_eq!(minimal.core.validation_issue_count_total, summary.core.validation_issue_count_total);
    }

    #[test]
    fn a_configuration_at_the_default_field_limit_is_listed_whole() {
        // Plain names, every severity and a few codes per field: nothing is cut.
        let n = crate::config::DEFAULT_MAX_FIELDS;
        let mut summary = builder(fields(n, |i| format!("field_{i:05}"))).summary(None);
        for field in &mut summary.breakdowns.by_field {
            field.issue_counts_by_severity =
                BTreeMap::from([(Severity::Info, 1_000), (Severity::Warning, 1_000), (Severity::Error, 1_000)]);
            field.issue_counts_by_code =
                counts(3, |i| ["invalid_email", "missing_required", "not_a_date"][i as usize].to_owned());
        }
        summary.bound();
        assert_eq!(summary.truncated, None);
        assert_eq!(summary.breakdowns.by_field.len(), n);
    }
}
