//! The reference extraction engine's core (SPEC §10), being built: compiled field rules, table
//! detection, column mapping and value validation over a grid of cells. The engine and builder
//! that read CSV/XLSX/XLS/ODS files and write the normalized output come next.
