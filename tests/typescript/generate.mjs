// Turns the committed JSON Schemas (schemas/*.json, schemas/events/*.json) into TypeScript
// declarations with json-schema-to-typescript, as a user of schemas/ alone would.
//
//   node generate.mjs [--schemas DIR] [--out DIR]
//
// DIR defaults: the repository's schemas/, and ./generated (which usage.ts imports). The Rust test
// (tests/it/typescript.rs) passes the schemas it generates from the Rust types, and compares the
// declarations with the committed schemas/typescript/.
//
// The options are the ones schemas/typescript/ is published with: payload objects are closed
// (`additionalProperties: false` unless a schema says otherwise), so a misspelt field does not
// compile. schemas/openapi.json is an OpenAPI document, not a JSON Schema: it is left out.
import {mkdir, readdir, readFile, rm, writeFile} from "node:fs/promises";
import {dirname, join, resolve} from "node:path";
import {fileURLToPath} from "node:url";
import {parseArgs} from "node:util";
import {compile} from "json-schema-to-typescript";

const here = dirname(fileURLToPath(import.meta.url));
const {values: args} = parseArgs({options: {schemas: {type: "string"}, out: {type: "string"}}});
const schemas = resolve(args.schemas ?? join(here, "../../schemas"));
const out = resolve(args.out ?? join(here, "generated"));

const banner = `/* eslint-disable */
/**
 * Generated from ade's schemas/ by json-schema-to-typescript (tests/typescript/generate.mjs).
 * Do not edit: run \`UPDATE_SCHEMAS=1 cargo test --test it typescript\` instead.
 */`;

async function jsonFiles(dir) {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".json") && n !== "openapi.json");
  return names.sort();
}

await rm(out, {recursive: true, force: true});
for (const sub of ["", "events"]) {
  const from = join(schemas, sub);
  const to = join(out, sub);
  await mkdir(to, {recursive: true});
  for (const name of await jsonFiles(from)) {
    const schema = JSON.parse(await readFile(join(from, name), "utf8"));
    const ts = await compile(schema, schema.title ?? name, {
      additionalProperties: false,
      bannerComment: banner,
      cwd: from,
      strictIndexSignatures: true,
      unknownAny: true,
    });
    await writeFile(join(to, name.replace(/\.json$/, ".d.ts")), ts);
  }
}
