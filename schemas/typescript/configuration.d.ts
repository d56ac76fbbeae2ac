/* eslint-disable */
/**
 * Generated from ade's schemas/ by json-schema-to-typescript (tests/typescript/generate.mjs).
 * Do not edit: run `UPDATE_SCHEMAS=1 cargo test --test it typescript` instead.
 */

/**
 * A configuration: an id, a version, and what engine runs it.
 */
export type Configuration = ExtractConfiguration | ProcessConfiguration | CustomEngineConfiguration;
/**
 * The type of a field's values.
 */
export type FieldType = "string" | "integer" | "number" | "date" | "email" | "boolean";
export type ConfigurationId = string;
/**
 * Format of the `extract` engine's normalized output.
 */
export type OutputFormat = "xlsx" | "csv";

/**
 * A configuration of the reference spreadsheet engine `extract` (SPEC §10).
 */
export interface ExtractConfiguration {
  /**
   * What it is for, for people.
   */
  description?: string | null;
  engine: "extract";
  /**
   * The canonical fields, in output order.
   */
  fields: FieldSpec[];
  /**
   * The configuration's id.
   */
  id: ConfigurationId;
  /**
   * Format of the normalized output.
   */
  output_format?: OutputFormat & string;
  /**
   * Run timeout in seconds (default 3600).
   */
  timeout_s?: number | null;
  /**
   * The author's version of it (reported as `config_version`).
   */
  version: string;
}
/**
 * One canonical field of an `extract` configuration.
 */
export interface FieldSpec {
  /**
   * The only values allowed.
   */
  allowed_values?: string[] | null;
  /**
   * A label for people; also matched against headers.
   */
  label?: string | null;
  /**
   * Largest allowed number (or length, for strings).
   */
  max?: number | null;
  /**
   * Smallest allowed number (or length, for strings).
   */
  min?: number | null;
  /**
   * The field's name, used in outputs and issues.
   */
  name: string;
  /**
   * A regular expression values must match.
   */
  pattern?: string | null;
  /**
   * Whether every row needs a value.
   */
  required?: boolean;
  /**
   * Other headers that mean this field.
   */
  synonyms?: string[];
  /**
   * The type values must have.
   */
  type?: FieldType & string;
}
/**
 * A configuration of the `process` engine: a command that speaks the subprocess wire (SPEC §8.2).
 */
export interface ProcessConfiguration {
  /**
   * Build commands, run in order; each is an argv.
   */
  build?: string[][];
  /**
   * The engine's command line (argv); the first item is the program.
   */
  command: string[];
  /**
   * What it is for, for people.
   */
  description?: string | null;
  engine: "process";
  /**
   * Extra environment for the build and engine commands.
   */
  env?: {
    [k: string]: string | undefined;
  };
  /**
   * The configuration's id.
   */
  id: ConfigurationId;
  /**
   * Run timeout in seconds (default 3600).
   */
  timeout_s?: number | null;
  /**
   * The author's version of it (reported as `config_version`).
   */
  version: string;
}
/**
 * A configuration of an engine registered by the embedding application; its other fields are the engine's settings.
 */
export interface CustomEngineConfiguration {
  /**
   * What it is for, for people.
   */
  description?: string | null;
  /**
   * The registered engine's name: any but `extract` and `process`.
   */
  engine: string;
  /**
   * The configuration's id.
   */
  id: ConfigurationId;
  /**
   * Run timeout in seconds (default 3600).
   */
  timeout_s?: number | null;
  /**
   * The author's version of it (reported as `config_version`).
   */
  version: string;
  [k: string]: unknown | undefined;
}
