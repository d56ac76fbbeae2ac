//! proptest strategies for every event type, shared by the crate's property tests.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use crate::event::*;
use crate::run::{Extra, Failure, RunMode, RunOptions, RunOutcome, RunStatus, Stage};
use crate::summary::*;

/// Text that stresses escaping: any characters, including quotes, newlines and controls.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-zA-Z0-9 _.-]{0,12}", 1 => any::<String>()]
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,10}"
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0), -1e12..1e12f64, proptest::num::f64::NORMAL]
}

/// Any JSON value, a few levels deep.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        finite().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(text(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Extra> {
    btree_map(text(), json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

/// Unknown fields a newer writer might add; the prefix keeps them apart from known field names.
fn extra() -> impl Strategy<Value = Extra> {
    prop_oneof![
        2 => Just(Map::new()),
        1 => btree_map("zz_[a-z0-9_]{1,8}", json_value(), 1..3).prop_map(|m| m.into_iter().collect()),
    ]
}

fn ulid() -> impl Strategy<Value = ulid::Ulid> {
    any::<u128>().prop_map(ulid::Ulid)
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![Just(Severity::Info), Just(Severity::Warning), Just(Severity::Error)]
}

fn counts<K: Strategy>(keys: K) -> impl Strategy<Value = BTreeMap<K::Value, u64>>
where
    K::Value: Ord,
{
    btree_map(keys, 0..1000u64, 0..3)
}

fn aggregate() -> impl Strategy<Value = ValidationAggregate> {
    (
        any::<u64>(),
        counts(severity()),
        counts(name()),
        btree_map(name(), (any::<u64>(), counts(severity()), counts(name())), 0..3),
        option::of(severity()),
    )
        .prop_map(|(issues_total, by_severity, by_code, by_field, max_severity)| ValidationAggregate {
            issues_total,
            issues_by_severity: by_severity,
            issues_by_code: by_code,
            issues_by_field: by_field
                .into_iter()
                .map(|(k, (t, s, c))| {
                    (k, FieldIssueCounts { issues_total: t, issues_by_severity: s, issues_by_code: c })
                })
                .collect(),
            max_severity,
        })
}

fn mode() -> impl Strategy<Value = RunMode> {
    prop_oneof![Just(RunMode::Execute), Just(RunMode::ValidateOnly), Just(RunMode::DryRun)]
}

fn reason() -> impl Strategy<Value = BuildReason> {
    prop_oneof![Just(BuildReason::CacheMiss), Just(BuildReason::CacheHit), Just(BuildReason::ForceRebuild)]
}

fn phase_status() -> impl Strategy<Value = PhaseStatus> {
    prop_oneof![Just(PhaseStatus::Succeeded), Just(PhaseStatus::Failed), Just(PhaseStatus::Skipped)]
}

fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![Just(Stage::Build), Just(Stage::Run)]
}

fn env() -> impl Strategy<Value = Option<BuildEnv>> {
    option::of((reason(), any::<bool>()).prop_map(|(reason, reused)| BuildEnv { reason, reused }))
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    // Years 1970 to about 2200, at microsecond precision.
    (0..7_258_118_400_000_000i64).prop_map(|micros| Timestamp::from_unix_micros(micros).unwrap_or_else(Timestamp::now))
}

fn table_summary() -> impl Strategy<Value = TableSummary> {
    let mapped = vec(
        (name(), text(), -1..50i64, 0.0..=1.0f64, any::<bool>(), any::<bool>()).prop_map(
            |(field, header, index, score, req, sat)| MappedColumn {
                field,
                header,
                source_column_index: index,
                score,
                is_required: req,
                is_satisfied: sat,
            },
        ),
        0..4,
    );
    let unmapped = vec(
        (text(), 0..50i64, name()).prop_map(|(header, index, output_header)| UnmappedColumn {
            header,
            source_column_index: index,
            output_header,
        }),
        0..3,
    );
    (
        (name(), text(), text(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>()),
        (mapped, unmapped, any::<u64>(), any::<u64>(), aggregate()),
        (any::<u64>(), any::<u64>(), any::<u64>(), extra(), extra()),
    )
        .prop_map(
            |(
                (id, file, sheet, fi, si, ti, rows, cols),
                (mapped, unmapped, mf, uc, validation),
                (h, f, l, meta_extra, extra),
            )| {
                TableSummary {
                    table_id: id,
                    source_file: file,
                    source_sheet: sheet,
                    file_index: fi,
                    sheet_index: si,
                    table_index: ti,
                    row_count: rows,
                    column_count: cols,
                    mapping: TableMapping { mapped_columns: mapped, unmapped_columns: unmapped },
                    mapped_field_count: mf,
                    unmapped_column_count: uc,
                    validation,
                    metadata: TableMetadata { header_row: h, first_data_row: f, last_data_row: l, extra: meta_extra },
                    extra,
                }
            },
        )
}

fn run_summary() -> impl Strategy<Value = RunSummary> {
    let status = prop_oneof![
        Just(RunStatus::Queued),
        Just(RunStatus::Running),
        Just(RunStatus::Succeeded),
        Just(RunStatus::Failed),
        Just(RunStatus::Cancelled)
    ];
    let run = (
        (ulid(), status, option::of(text()), option::of(stage()), option::of(text())),
        (option::of(text()), option::of(reason()), option::of(any::<bool>())),
        (option::of(timestamp()), option::of(timestamp()), option::of(finite())),
    )
        .prop_map(
            |((id, status, code, stage, message), (version, env_reason, env_reused), (started, completed, seconds))| {
                SummaryRun {
                    id: RunId::from_ulid(id),
                    workspace_id: WorkspaceId::default(),
                    configuration_id: ConfigurationId::new("members").unwrap_or_else(|_| unreachable!()),
                    configuration_version: version.clone(),
                    status,
                    failure_code: code,
                    failure_stage: stage,
                    failure_message: message,
                    engine_version: version.clone(),
                    config_version: version,
                    env_reason,
                    env_reused,
                    started_at: started,
                    completed_at: completed,
                    duration_seconds: seconds,
                }
            },
        );
    let core = (vec(any::<u64>(), 9), counts(severity()), counts(name())).prop_map(|(n, s, c)| SummaryCore {
        input_file_count: n[0],
        input_sheet_count: n[1],
        table_count: n[2],
        row_count: n[3],
        canonical_field_count: n[4],
        required_field_count: n[5],
        mapped_field_count: n[6],
        unmapped_column_count: n[7],
        validation_issue_count_total: n[8],
        issue_counts_by_severity: s,
        issue_counts_by_code: c,
    });
    let by_file = vec(
        (text(), any::<u64>(), any::<u64>(), any::<u64>(), counts(severity()), counts(name())).prop_map(
            |(f, t, r, v, s, c)| FileBreakdown {
                source_file: f,
                table_count: t,
                row_count: r,
                validation_issue_count_total: v,
                issue_counts_by_severity: s,
                issue_counts_by_code: c,
            },
        ),
        0..3,
    );
    let by_field = vec(
        (
            name(),
            text(),
            any::<bool>(),
            any::<bool>(),
            option::of(0.0..=1.0f64),
            any::<u64>(),
            counts(severity()),
            counts(name()),
        )
            .prop_map(|(field, label, required, mapped, max_score, v, s, c)| FieldBreakdown {
                field,
                label,
                required,
                mapped,
                max_score,
                validation_issue_count_total: v,
                issue_counts_by_severity: s,
                issue_counts_by_code: c,
            }),
        0..3,
    );
    (run, core, by_file, by_field).prop_map(|(run, core, by_file, by_field)| RunSummary {
        schema: RUN_SUMMARY_SCHEMA.to_owned(),
        version: RUN_SUMMARY_VERSION.to_owned(),
        run,
        core,
        breakdowns: SummaryBreakdowns { by_file, by_field },
        truncated: None,
    })
}

/// Any payload: every catalog type, extensions and unknown types.
pub(crate) fn payload() -> impl Strategy<Value = EventPayload> {
    let console = (
        (
            prop_oneof![Just(ConsoleScope::Build), Just(ConsoleScope::Run)],
            prop_oneof![Just(ConsoleStream::Stdout), Just(ConsoleStream::Stderr)],
        ),
        prop_oneof![
            Just(ConsoleLevel::Debug),
            Just(ConsoleLevel::Info),
            Just(ConsoleLevel::Warn),
            Just(ConsoleLevel::Error)
        ],
        (text(), option::of(name()), option::of(name()), option::of(text()), extra()),
    )
        .prop_map(|((scope, stream), level, (message, phase, logger, engine_timestamp, extra))| {
            EventPayload::ConsoleLine(ConsoleLine {
                scope,
                stream,
                level,
                message,
                phase,
                logger,
                engine_timestamp,
                extra,
            })
        });
    let options = (option::of(vec(text(), 0..3)), option::of(any::<bool>()), option::of(object()), extra()).prop_map(
        |(input_sheet_names, force_rebuild, metadata, extra)| RunOptions {
            input_sheet_names,
            force_rebuild,
            metadata,
            extra,
        },
    );
    let phase_started = || {
        (name(), option::of(text()), extra()).prop_map(|(phase, message, extra)| PhaseStarted { phase, message, extra })
    };
    let completed = (
        prop_oneof![Just(RunOutcome::Succeeded), Just(RunOutcome::Failed), Just(RunOutcome::Cancelled)],
        option::of((stage(), name(), text()).prop_map(|(stage, code, message)| Failure { stage, code, message })),
        (option::of(any::<i32>()), option::of(timestamp()), timestamp(), any::<u64>()),
        (vec(text(), 0..3), text()),
        (run_summary(), any::<u64>(), extra()),
    )
        .prop_map(
            |(
                status,
                failure,
                (exit_code, started_at, completed_at, duration_ms),
                (output_paths, events_path),
                (summary, event_count, extra),
            )| {
                EventPayload::RunCompleted(Box::new(RunCompleted {
                    status,
                    failure,
                    execution: Execution { exit_code, started_at, completed_at, duration_ms },
                    artifacts: Artifacts { output_paths, events_path },
                    summary,
                    event_count,
                    extra,
                }))
            },
        );
    prop_oneof![
        (mode(), options, option::of(option::of(text()).prop_map(|token_name| QueuedBy { token_name })), extra())
            .prop_map(|(mode, options, queued_by, extra)| EventPayload::RunQueued(RunQueued {
                status: QueuedStatus::Value,
                mode,
                options,
                queued_by,
                extra
            })),
        (reason(), any::<bool>(), text(), extra()).prop_map(|(reason, should_build, fingerprint, extra)| {
            EventPayload::BuildCreated(BuildCreated {
                status: QueuedStatus::Value,
                reason,
                should_build,
                fingerprint,
                extra,
            })
        }),
        (reason(), extra()).prop_map(|(reason, extra)| EventPayload::BuildStarted(BuildStarted {
            status: BuildingStatus::Value,
            reason,
            extra
        })),
        phase_started().prop_map(EventPayload::BuildPhaseStarted),
        (name(), phase_status(), any::<u64>(), option::of(text()), extra()).prop_map(
            |(phase, status, duration_ms, message, extra)| {
                EventPayload::BuildPhaseCompleted(BuildPhaseCompleted { phase, status, duration_ms, message, extra })
            }
        ),
        (
            prop_oneof![
                Just(BuildStatus::Succeeded),
                Just(BuildStatus::Failed),
                Just(BuildStatus::Reused),
                Just(BuildStatus::Skipped)
            ],
            (option::of(any::<u64>()), option::of(any::<i32>()), option::of(text()), env()),
            option::of((name(), text(), option::of(object())).prop_map(|(code, message, details)| ErrorInfo {
                code,
                message,
                details
            })),
            extra(),
        )
            .prop_map(|(status, (duration_ms, exit_code, summary, env), error, extra)| {
                EventPayload::BuildCompleted(BuildCompleted {
                    status,
                    duration_ms,
                    exit_code,
                    summary,
                    env,
                    error,
                    extra,
                })
            }),
        console,
        (mode(), option::of(text()), option::of(text()), env(), extra()).prop_map(
            |(mode, engine_version, config_version, env, extra)| {
                EventPayload::RunStarted(RunStarted {
                    status: InProgressStatus::Value,
                    mode,
                    engine_version,
                    config_version,
                    env,
                    extra,
                })
            }
        ),
        phase_started().prop_map(EventPayload::RunPhaseStarted),
        (
            name(),
            phase_status(),
            any::<u64>(),
            option::of(text()),
            option::of(btree_map(
                name(),
                prop_oneof![any::<u64>().prop_map(Number::from), finite().prop_filter_map("finite", Number::from_f64)],
                0..3
            )),
            extra(),
        )
            .prop_map(|(phase, status, duration_ms, message, metrics, extra)| {
                EventPayload::RunPhaseCompleted(RunPhaseCompleted {
                    phase,
                    status,
                    duration_ms,
                    message,
                    metrics,
                    extra,
                })
            }),
        table_summary().prop_map(EventPayload::RunTableSummary),
        (
            name(),
            severity(),
            name(),
            option::of(name()),
            option::of(1..1_000_000u64),
            option::of(text()),
            option::of(text()),
            (text(), extra())
        )
            .prop_map(|(table_id, severity, code, field, row, column, value, (message, extra))| {
                EventPayload::RunValidationIssue(ValidationIssue {
                    table_id,
                    severity,
                    code,
                    field,
                    row,
                    column,
                    value,
                    message,
                    extra,
                })
            }),
        aggregate().prop_map(EventPayload::RunValidationSummary),
        (stage(), name(), text(), option::of(name()), option::of(object()), extra()).prop_map(
            |(stage, code, message, phase, details, extra)| {
                EventPayload::RunError(RunError { stage, code, message, phase, details, extra })
            }
        ),
        completed,
        ("x\\.[a-z][a-z0-9_.-]{0,12}", object())
            .prop_map(|(event_type, payload)| EventPayload::Extension { event_type, payload }),
        ("[a-z]{1,8}\\.[a-z.]{1,12}", json_value())
            .prop_filter("not a catalog or extension type", |(t, _)| {
                !EventPayload::CATALOG_TYPES.contains(&t.as_str()) && !t.starts_with("x.")
            })
            .prop_map(|(event_type, payload)| EventPayload::Unknown { event_type, payload }),
    ]
}

/// Any envelope.
pub(crate) fn envelope() -> impl Strategy<Value = Envelope> {
    (
        (ulid(), timestamp(), 1..u64::MAX),
        prop_oneof![Just(EventSource::Api), Just(EventSource::Engine), Just(EventSource::Worker)],
        ("[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}", "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}"),
        (ulid(), option::of(ulid())),
        payload(),
    )
        .prop_map(
            |((event_id, created_at, sequence), source, (workspace, configuration), (run, build), payload)| Envelope {
                event_id: EventId::from_ulid(event_id),
                created_at,
                sequence,
                source,
                workspace_id: WorkspaceId::new(workspace).unwrap_or_default(),
                configuration_id: ConfigurationId::new(configuration).unwrap_or_else(|_| unreachable!()),
                run_id: RunId::from_ulid(run),
                build_id: build.map(BuildId::from_ulid),
                payload,
            },
        )
}
