#!/bin/sh
# A process engine (SPEC §8.2) in plain sh: NDJSON events on stdout, anything else is console.
# ade passes ADE_RUN_ID, ADE_MODE, ADE_INPUT_PATHS_JSON, ADE_OUTPUT_DIR, … in the environment.
set -eu

echo '{"type":"run.phase.started","payload":{"phase":"counting","message":"Counting input lines"}}'
echo "run $ADE_RUN_ID in mode $ADE_MODE"
echo "inputs: $ADE_INPUT_PATHS_JSON"
echo "a line on stderr becomes a warning" >&2

# Input paths arrive as a JSON array of strings; sh has no JSON parser, so split on quotes.
total=0
for path in $(printf '%s' "$ADE_INPUT_PATHS_JSON" | tr -d '[]' | tr ',' '\n' | tr -d '"'); do
  if [ ! -r "$path" ]; then
    echo "cannot read input $path" >&2
    exit 1
  fi
  lines=$(wc -l < "$path")
  lines=$((lines + 0))
  echo "$(basename "$path"): $lines lines"
  total=$((total + lines))
done
echo "{\"type\":\"run.phase.completed\",\"payload\":{\"phase\":\"counting\",\"status\":\"succeeded\",\"duration_ms\":1,\"metrics\":{\"lines\":$total}}}"
echo '{"type":"x.hello.greeting","payload":{"text":"extension events pass through untouched"}}'

if [ "$ADE_MODE" = "execute" ]; then
  mkdir -p "$ADE_OUTPUT_DIR"
  echo "total lines: $total" > "$ADE_OUTPUT_DIR/count.txt"
  echo "{\"type\":\"engine.completed\",\"payload\":{\"output_paths\":[\"outputs/count.txt\"]}}"
fi
