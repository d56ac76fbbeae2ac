//! Column mapping (SPEC §10): which column of a table holds which configured field.
//!
//! Scores, all in `[0, 1]`:
//!
//! - [`header_score`]: how well a header names a field. The header and each of the field's match
//!   keys (name, label, synonyms) are [normalized](super::normalize); the score is the best over
//!   the keys of:
//!   - `1.0` for an exact normalized match (`E-mail`, ` EMAIL ` → `email`);
//!   - containment, when one contains the other and the shorter has at least 3 characters:
//!     `0.5 + 0.4 × shorter / longer` (`Email address` vs `email`: `0.5 + 0.4 × 5/12 ≈ 0.67`);
//!   - word overlap: `0.8 × Jaccard(words of the header, words of the key)` (`Name, first` vs
//!     `First name`: `0.8`);
//!   - small edit distance: with `similarity = 1 − levenshtein / longer length`, when it is at
//!     least `0.75`, `0.9 × similarity` (`Adress` vs `address`: `0.9 × 6/7 ≈ 0.77`); only computed
//!     when both are at most 64 characters.
//! - [`type_fit`]: the fraction of the sampled non-blank values that are values of the field's
//!   type (as [`validate`](super::validate()) judges them); `0.5` when there are none (no evidence).
//! - combined: [`HEADER_WEIGHT`]` × header + `[`FIT_WEIGHT`]` × fit` = `0.75 × header + 0.25 × fit`.
//!
//! [`map_columns`] is greedy in field order: each field, in configuration order, takes the
//! not-yet-taken column with the highest combined score, if that score is at least
//! [`MAP_THRESHOLD`] (`0.5`) and the header score is above zero (type fit alone never maps a
//! column); ties go to the leftmost column. So when two fields want one column, the first field
//! wins, and a header tie between two columns is broken by type fit.

use super::cell::Cell;
use super::fields::{CompiledField, CompiledFields, MatchKey, normalize, tokens};
use super::validate::parses_as;
use ade_core::config::FieldType;
use ade_core::event::{MappedColumn, TableMapping, UnmappedColumn};

/// Weight of the header score in the combined score.
pub const HEADER_WEIGHT: f64 = 0.75;
/// Weight of the type fit in the combined score.
pub const FIT_WEIGHT: f64 = 0.25;
/// The least combined score that maps a column to a field.
pub const MAP_THRESHOLD: f64 = 0.5;

/// Longest normalized text for which an edit distance is computed.
const MAX_EDIT_LEN: usize = 64;

/// A header prepared for scoring against many fields.
#[derive(Debug, Clone)]
pub(crate) struct PreparedHeader {
    normalized: Vec<char>,
    normalized_text: String,
    tokens: Vec<String>,
}

impl PreparedHeader {
    pub(crate) fn new(header: &str) -> PreparedHeader {
        let normalized_text = normalize(header);
        PreparedHeader { normalized: normalized_text.chars().collect(), normalized_text, tokens: tokens(header) }
    }

    /// [`header_score`] of this header.
    pub(crate) fn score(&self, field: &CompiledField) -> f64 {
        if self.normalized_text.is_empty() {
            return 0.0;
        }
        field.match_keys().iter().map(|key| self.score_key(key, 0.0)).fold(0.0, f64::max)
    }

    /// Whether this header's [`score`](Self::score) for some field is at least `threshold`.
    pub(crate) fn names_any(&self, fields: &CompiledFields, threshold: f64) -> bool {
        !self.normalized_text.is_empty()
            && fields
                .iter()
                .any(|field| field.match_keys().iter().any(|key| self.score_key(key, threshold) >= threshold))
    }

    /// The score against one key. A part whose upper bound (from lengths and word counts alone)
    /// is below `floor`, or cannot beat the best part so far, is not computed: a result at or
    /// above `floor` is exact, a result below it only says the score is below `floor` (with
    /// `floor` 0 the result is always exact). This keeps header detection cheap on data rows.
    fn score_key(&self, key: &MatchKey, floor: f64) -> f64 {
        let header = self.normalized_text.as_str();
        let target = key.normalized.as_str();
        if header == target {
            return 1.0;
        }
        let (header_len, key_len) = (self.normalized.len(), key.chars.len());
        let (shorter, longer) = (header_len.min(key_len), header_len.max(key_len));
        if longer == 0 {
            return 0.0;
        }
        let worth = |bound: f64, best: f64| bound >= floor && bound > best;
        let mut best: f64 = 0.0;
        let contained = 0.5 + 0.4 * shorter as f64 / longer as f64;
        if shorter >= 3 && worth(contained, best) && (contains(header, target) || contains(target, header)) {
            best = contained;
        }
        let (words, key_words) = (self.tokens.len(), key.tokens.len());
        if words > 0 && key_words > 0 && worth(0.8 * words.min(key_words) as f64 / words.max(key_words) as f64, best) {
            best = best.max(0.8 * jaccard(&self.tokens, &key.tokens));
        }
        // The distance is at least the difference in length; a similarity below 0.75 counts
        // for nothing, so the distance is only needed up to a quarter of the longer length.
        let diff = longer - shorter;
        if longer <= MAX_EDIT_LEN && diff * 4 <= longer && worth(0.9 * (1.0 - diff as f64 / longer as f64), best) {
            let distance = levenshtein(&self.normalized, &key.chars, longer / 4);
            let similarity = 1.0 - distance as f64 / longer as f64;
            if similarity >= 0.75 {
                best = best.max(0.9 * similarity);
            }
        }
        best
    }
}

/// How well `header` names `field`, in `[0, 1]` (see the module docs).
pub fn header_score(header: &str, field: &CompiledField) -> f64 {
    PreparedHeader::new(header).score(field)
}

/// The fraction of the non-blank `values` that are values of `field_type`; `0.5` when all are
/// blank.
pub fn type_fit(values: &[&Cell], field_type: FieldType) -> f64 {
    let mut seen = 0usize;
    let mut fit = 0usize;
    for value in values.iter().filter(|value| !value.is_blank()) {
        seen += 1;
        if parses_as(value, field_type) {
            fit += 1;
        }
    }
    if seen == 0 { 0.5 } else { fit as f64 / seen as f64 }
}

/// Maps a table's columns to `fields`: `headers` are the table's column headers in source order
/// (their number is the table's column count) and `samples[i]` some values of column `i` (missing
/// entries count as no values). Returns one [`MappedColumn`] per field in configuration order
/// (`source_column_index: -1`, `header: ""`, `score: 0.0`, `is_satisfied: false` when the field
/// found no column) and the other columns as [`UnmappedColumn`]s named `raw_1`, `raw_2`, … in
/// source order.
pub fn map_columns(headers: &[String], samples: &[Vec<&Cell>], fields: &CompiledFields) -> TableMapping {
    let prepared: Vec<PreparedHeader> = headers.iter().map(|h| PreparedHeader::new(h)).collect();
    let mut taken = vec![false; headers.len()];
    let mut mapped_columns = Vec::with_capacity(fields.len());
    for field in fields {
        let mut best: Option<(usize, f64)> = None;
        for (index, header) in prepared.iter().enumerate() {
            if taken.get(index).copied().unwrap_or(true) {
                continue;
            }
            let header_part = header.score(field);
            if header_part <= 0.0 {
                continue;
            }
            let values = samples.get(index).map(Vec::as_slice).unwrap_or_default();
            let score =
                (HEADER_WEIGHT * header_part + FIT_WEIGHT * type_fit(values, field.field_type())).clamp(0.0, 1.0);
            if score >= MAP_THRESHOLD && best.is_none_or(|(_, top)| score > top) {
                best = Some((index, score));
            }
        }
        let entry = match best {
            Some((index, score)) => {
                if let Some(slot) = taken.get_mut(index) {
                    *slot = true;
                }
                MappedColumn {
                    field: field.name().to_owned(),
                    header: headers.get(index).cloned().unwrap_or_default(),
                    source_column_index: index as i64,
                    score,
                    is_required: field.is_required(),
                    is_satisfied: true,
                }
            }
            None => MappedColumn {
                field: field.name().to_owned(),
                header: String::new(),
                source_column_index: -1,
                score: 0.0,
                is_required: field.is_required(),
                is_satisfied: false,
            },
        };
        mapped_columns.push(entry);
    }
    let unmapped_columns = headers
        .iter()
        .enumerate()
        .filter(|(index, _)| !taken.get(*index).copied().unwrap_or(false))
        .enumerate()
        .map(|(n, (index, header))| UnmappedColumn {
            header: header.clone(),
            source_column_index: index as i64,
            output_header: format!("raw_{}", n + 1),
        })
        .collect();
    TableMapping { mapped_columns, unmapped_columns }
}

/// Whether `needle` occurs in `haystack`: a plain window scan, cheaper than `str::contains`'s
/// searcher set-up for the short texts compared here (a UTF-8 needle can only match at
/// character boundaries).
fn contains(haystack: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    needle.is_empty()
        || (needle.len() <= haystack.len() && haystack.as_bytes().windows(needle.len()).any(|window| window == needle))
}

/// Jaccard index of two sorted, deduplicated word lists.
fn jaccard(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let common = a.iter().filter(|word| b.binary_search(word).is_ok()).count();
    let union = a.len() + b.len() - common;
    common as f64 / union as f64
}

/// Levenshtein distance over characters when it is at most `max`, else some value above `max`
/// (the computation stops as soon as every path is longer). `b` has at most [`MAX_EDIT_LEN`]
/// characters (two rows on the stack); a longer `b` gives `usize::MAX`.
fn levenshtein(a: &[char], b: &[char], max: usize) -> usize {
    if b.len() > MAX_EDIT_LEN {
        return usize::MAX;
    }
    // Small rows: zeroing them is part of every call.
    let mut previous = [0u16; MAX_EDIT_LEN + 1];
    let mut current = [0u16; MAX_EDIT_LEN + 1];
    for (j, slot) in (0u16..).zip(previous.iter_mut().take(b.len() + 1)) {
        *slot = j;
    }
    for (i, ca) in a.iter().enumerate() {
        current[0] = u16::try_from(i + 1).unwrap_or(u16::MAX);
        let mut row_min = current[0];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j].saturating_add(u16::from(ca != cb));
            current[j + 1] = substitution.min(previous[j + 1].saturating_add(1)).min(current[j].saturating_add(1));
            row_min = row_min.min(current[j + 1]);
        }
        if usize::from(row_min) > max {
            return usize::from(row_min);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    usize::from(previous[b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{compile, field, members, t};

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    /// Maps with no sampled values (type fit 0.5 everywhere).
    fn map(names: &[&str], fields: &CompiledFields) -> TableMapping {
        map_columns(&headers(names), &[], fields)
    }

    fn column_of(mapping: &TableMapping, field: &str) -> i64 {
        mapping
            .mapped_columns
            .iter()
            .find(|column| column.field == field)
            .map(|column| column.source_column_index)
            .expect("the field has an entry")
    }

    #[test]
    fn header_scores() {
        let fields = members();
        let email = fields.get(2).expect("email");
        let member = fields.get(0).expect("member_id");
        let name = fields.get(1).expect("name");
        assert_eq!(header_score("email", email), 1.0);
        assert_eq!(header_score("E-mail", email), 1.0);
        assert_eq!(header_score(" EMAIL ", email), 1.0);
        assert_eq!(header_score("E-Mail Address", email), 1.0, "synonym");
        assert_eq!(header_score("Member #", member), 1.0, "synonym `member`");
        assert_eq!(header_score("Full Name", name), 1.0, "label");
        let contained = header_score("Email (work)", email);
        assert!((contained - (0.5 + 0.4 * 5.0 / 9.0)).abs() < 1e-9, "{contained}");
        let typo = header_score("Emial address", email);
        assert!(typo > 0.7 && typo < 1.0, "{typo}");
        let words = header_score("Name, full", name);
        assert!((words - 0.8).abs() < 1e-9, "{words}");
        assert_eq!(header_score("Comments", email), 0.0);
        assert_eq!(header_score("", email), 0.0);
        assert_eq!(header_score("##", email), 0.0);
        assert_eq!(header_score("em", email), 0.0, "containment needs 3 characters");
        let id = header_score("ID", member);
        assert!((id - 0.4).abs() < 1e-9, "one word of two (`member`, `id`): {id}");
    }

    #[test]
    fn type_fit_is_the_fraction_of_non_blank_values() {
        let values = [t("a@b.co"), t(""), t("nope"), t("c@d.org"), t("x@y.io")];
        let refs: Vec<&Cell> = values.iter().collect();
        assert_eq!(type_fit(&refs, FieldType::Email), 0.75);
        assert_eq!(type_fit(&refs, FieldType::String), 1.0);
        assert_eq!(type_fit(&refs, FieldType::Integer), 0.0);
        assert_eq!(type_fit(&[&Cell::Empty], FieldType::Integer), 0.5);
        assert_eq!(type_fit(&[], FieldType::Date), 0.5);
    }

    #[test]
    fn exact_and_normalized_headers_map() {
        let mapping = map(&[" EMAIL ", "Member #", "NAME", "Joined"], &members());
        assert_eq!(column_of(&mapping, "member_id"), 1);
        assert_eq!(column_of(&mapping, "name"), 2);
        assert_eq!(column_of(&mapping, "email"), 0);
        assert_eq!(column_of(&mapping, "joined"), 3);
        assert!(mapping.unmapped_columns.is_empty());
        let email = mapping.mapped_columns.get(2).expect("email entry");
        assert_eq!(email.header, " EMAIL ");
        assert!((email.score - (0.75 + 0.25 * 0.5)).abs() < 1e-9, "{}", email.score);
        assert!(email.is_satisfied);
        assert!(!email.is_required);
    }

    #[test]
    fn mapped_columns_follow_configuration_order_with_unmapped_columns_as_raw_n() {
        let mapping = map(&["Notes", "Full name", "", "E-mail", "Region"], &members());
        let fields: Vec<&str> = mapping.mapped_columns.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["member_id", "name", "email", "joined"]);
        let raw: Vec<(i64, &str, &str)> = mapping
            .unmapped_columns
            .iter()
            .map(|c| (c.source_column_index, c.header.as_str(), c.output_header.as_str()))
            .collect();
        assert_eq!(raw, vec![(0, "Notes", "raw_1"), (2, "", "raw_2"), (4, "Region", "raw_3")]);
    }

    #[test]
    fn a_required_field_without_a_column_is_unsatisfied() {
        let mapping = map(&["Full name", "E-mail"], &members());
        let member = mapping.mapped_columns.first().expect("member_id entry");
        assert_eq!(
            member,
            &MappedColumn {
                field: "member_id".to_owned(),
                header: String::new(),
                source_column_index: -1,
                score: 0.0,
                is_required: true,
                is_satisfied: false,
            }
        );
    }

    #[test]
    fn first_field_wins_a_contested_column() {
        let mut home = field("home_email", FieldType::Email);
        home.synonyms = vec!["email".to_owned()];
        let mut work = field("work_email", FieldType::Email);
        work.synonyms = vec!["email".to_owned()];
        let mapping = map(&["Email"], &compile(vec![home, work]));
        assert_eq!(column_of(&mapping, "home_email"), 0);
        assert_eq!(column_of(&mapping, "work_email"), -1);
        assert!(mapping.unmapped_columns.is_empty());
    }

    #[test]
    fn type_fit_breaks_a_header_tie() {
        let fields = compile(vec![field("date", FieldType::Date)]);
        let (a, b) = (t("soon"), t("2024-01-31"));
        let texts: Vec<&Cell> = vec![&a, &a];
        let dates: Vec<&Cell> = vec![&b, &b];
        let mapping = map_columns(&headers(&["Date 1", "Date 2"]), &[texts, dates], &fields);
        assert_eq!(column_of(&mapping, "date"), 1);
        assert_eq!(mapping.unmapped_columns.len(), 1);
        let raw = mapping.unmapped_columns.first().expect("one unmapped column");
        assert_eq!((raw.source_column_index, raw.output_header.as_str()), (0, "raw_1"));
    }

    #[test]
    fn type_fit_beats_a_slightly_better_header() {
        let mut contact = field("contact", FieldType::Email);
        contact.label = Some("Contact".to_owned());
        let fields = compile(vec![contact]);
        let (name, email) = (t("Ada Lovelace"), t("ada@example.org"));
        let samples = vec![vec![&name, &name], vec![&email, &email]];
        let header_names = headers(&["Contact name", "Contact email"]);
        let field = fields.get(0).expect("contact");
        let first = header_score("Contact name", field);
        let second = header_score("Contact email", field);
        assert!(first > second, "{first} vs {second}");
        let mapping = map_columns(&header_names, &samples, &fields);
        assert_eq!(column_of(&mapping, "contact"), 1);
    }

    #[test]
    fn type_fit_alone_never_maps_a_column() {
        let fields = compile(vec![field("joined", FieldType::Date)]);
        let date = t("2024-01-31");
        let mapping = map_columns(&headers(&["Whatever"]), &[vec![&date]], &fields);
        assert_eq!(column_of(&mapping, "joined"), -1);
        assert_eq!(mapping.unmapped_columns.len(), 1);
    }

    #[test]
    fn pruned_scoring_agrees_with_the_full_score() {
        let fields = members();
        let texts = [
            "E-mail",
            "Emial address",
            "Member #",
            "member no.",
            "Full name",
            "Name, full",
            "Joined",
            "Jioned",
            "email address (work)",
            "Company 12",
            "1 Main Street",
            "ada@example.org",
            "Ada",
            "NL",
            "2024-01-02",
            "Notes",
            "em",
            "Membership",
            "mail",
            "Full",
            "joined on",
            "x",
            "",
        ];
        for threshold in [0.3, 0.5, 0.6, 0.75, 0.9] {
            for text in texts {
                let header = PreparedHeader::new(text);
                let full = fields.iter().map(|field| header.score(field)).fold(0.0, f64::max);
                assert_eq!(header.names_any(&fields, threshold), full >= threshold, "{text:?} at {threshold}");
                for field in &fields {
                    for key in field.match_keys() {
                        let pruned = header.score_key(key, threshold);
                        let exact = header.score_key(key, 0.0);
                        assert!(pruned <= exact + 1e-12, "{text:?}: a pruned score never exceeds the score");
                        if exact >= threshold {
                            assert_eq!(pruned, exact, "{text:?} vs {:?} at {threshold}", key.normalized);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn edit_distance() {
        let a: Vec<char> = "kitten".chars().collect();
        let b: Vec<char> = "sitting".chars().collect();
        assert_eq!(levenshtein(&a, &b, usize::MAX), 3);
        assert_eq!(levenshtein(&[], &b, usize::MAX), 7);
        assert_eq!(levenshtein(&a, &[], usize::MAX), 6);
        assert!(levenshtein(&a, &b, 1) > 1, "stops early, above the bound");
        assert_eq!(levenshtein(&a, &b, 3), 3);
    }
}
