//! The knee of a fan-out: the most subscribers (stepping 500, 1,000, 1,500, …) whose readers all
//! get every event at 1,000 events/s with p99 ≤ 250 ms. Several servers (sides) are searched
//! together, alternating at every step, so the machine's noise falls on all of them alike.

use std::future::Future;
use std::pin::Pin;

use super::BoxError;
use super::reader::Round;

/// The latency a step must stay within.
pub(crate) const P99_LIMIT_MS: f64 = 250.0;
/// Subscribers added at each step (and the first step).
pub(crate) const STEP: usize = 500;
/// Steps measured whatever the knee, so every side reports these.
pub(crate) const REPORTED: [usize; 2] = [1000, 2000];

/// One step of one side.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) n: usize,
    pub(crate) events: u64,
    pub(crate) lost: u64,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    /// Every reader got every event, in order, and p99 ≤ [`P99_LIMIT_MS`].
    pub(crate) passed: bool,
}

impl Point {
    fn of(n: usize, round: &Round) -> Self {
        let p99_ms = round.p99_ms();
        Self {
            n,
            events: round.events,
            lost: round.lost,
            p50_ms: round.p50_ms(),
            p99_ms,
            passed: round.complete() && p99_ms.is_some_and(|p99| p99 <= P99_LIMIT_MS),
        }
    }
}

/// Measures one step: `n` readers of a fresh stream.
type Measure<'a> = Box<dyn FnMut(usize) -> Pin<Box<dyn Future<Output = Result<Round, BoxError>> + 'a>> + 'a>;

/// One server searched for its knee.
pub(crate) struct Side<'a> {
    pub(crate) name: &'static str,
    measure: Measure<'a>,
    pub(crate) points: Vec<Point>,
    /// The largest N that passed before the first step that failed (twice).
    pub(crate) knee: usize,
    /// No step has failed yet.
    open: bool,
}

impl<'a> Side<'a> {
    /// A side measured by `measure` (`n` readers of a fresh stream).
    pub(crate) fn new<F>(name: &'static str, mut measure: impl FnMut(usize) -> F + 'a) -> Self
    where
        F: Future<Output = Result<Round, BoxError>> + 'a,
    {
        let measure: Measure<'a> = Box::new(move |n| Box::pin(measure(n)));
        Self { name, measure, points: Vec::new(), knee: 0, open: true }
    }

    /// The last measurement at `n`.
    pub(crate) fn at(&self, n: usize) -> Option<&Point> {
        self.points.iter().rev().find(|p| p.n == n)
    }

    /// `knee`, and p50/p99 at the [`REPORTED`] steps, as JSON fields named `<prefix>knee`,
    /// `<prefix>p99_1000_ms`, ….
    pub(crate) fn summary(&self, prefix: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        fields.insert(format!("{prefix}knee"), self.knee.into());
        for n in REPORTED {
            let point = self.at(n);
            fields.insert(format!("{prefix}p50_{n}_ms"), round1(point.and_then(|p| p.p50_ms)).into());
            fields.insert(format!("{prefix}p99_{n}_ms"), round1(point.and_then(|p| p.p99_ms)).into());
            fields.insert(format!("{prefix}lost_{n}"), point.map(|p| p.lost).into());
        }
        fields
    }

    async fn step(&mut self, n: usize) -> Result<(), BoxError> {
        let mut point = Point::of(n, &(self.measure)(n).await?);
        self.report(&point, "");
        if self.open && !point.passed {
            // One failing step may be the machine's noise: the search stops at a step that fails
            // twice in a row.
            self.points.push(point);
            point = Point::of(n, &(self.measure)(n).await?);
            self.report(&point, " (again)");
        }
        if self.open {
            if point.passed {
                self.knee = n;
            } else {
                self.open = false;
            }
        }
        self.points.push(point);
        Ok(())
    }

    fn report(&self, point: &Point, again: &str) {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        println!(
            "{:>12} N = {:>5}{again}: p50 {} ms, p99 {} ms, {} events, lost {}: {}",
            self.name,
            point.n,
            ms(point.p50_ms),
            ms(point.p99_ms),
            point.events,
            point.lost,
            if point.passed { "within" } else { "beyond" }
        );
    }
}

/// Steps every side from [`STEP`] subscribers up by [`STEP`], alternating which side goes first,
/// until every side has failed a step (twice) and the [`REPORTED`] steps are measured, or `max`.
pub(crate) async fn search(sides: &mut [Side<'_>], max: usize) -> Result<(), BoxError> {
    let last_reported = REPORTED.iter().copied().max().unwrap_or(0);
    let mut n = STEP;
    let mut round = 0;
    while n <= max && sides.iter().any(|side| side.open || n <= last_reported) {
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let side = &mut sides[index];
            if side.open || n <= last_reported {
                side.step(n).await?;
            }
        }
        n += STEP;
        round += 1;
    }
    Ok(())
}

pub(crate) fn round1(value: Option<f64>) -> Option<f64> {
    value.map(|v| (v * 10.0).round() / 10.0)
}
