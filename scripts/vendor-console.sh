#!/usr/bin/env bash
# Refreshes gateway/console/vendor/ from the npm registry: Preact (with its
# hooks) and htm, at the pinned versions, checked against their pinned
# integrity, as ES modules the console imports by relative path (the one bare
# `from"preact"` of the hooks module rewritten to `./preact.mjs`, as no import
# map is allowed under the console's Content-Security-Policy). Needs node/npm;
# building the gateway does not (the files are committed and embedded).
set -euo pipefail

PREACT=11.2.0
PREACT_SHA512='sha512-/HfHI/7N84e6GrWBJ3J280z3mLaRJiDcSvj/A+y/4AbLnND/1UlGHe1sR6oYuTGwId0nP7dqDU9OnLxMPZ7xBg=='
HTM=3.1.1
HTM_SHA512='sha512-983Vyg8NwUE7JkZ6NmOqpCZ+sh1bKv2iYTlUkzlWmA5JD2acKoxd4KVxbMmxX/85mtfdnDmTFoNKcg5DGAvxNQ=='

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/gateway/console/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() { # name version integrity
  local tgz
  tgz="$(cd "$tmp" && npm pack --silent "$1@$2")"
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/$tgz" | base64 -w0)"
  if [ "$got" != "$3" ]; then
    echo "vendor-console: $1@$2 does not have the pinned integrity" >&2
    exit 1
  fi
  mkdir -p "$tmp/$1"
  tar xzf "$tmp/$tgz" -C "$tmp/$1"
}

fetch preact "$PREACT" "$PREACT_SHA512"
fetch htm "$HTM" "$HTM_SHA512"

mkdir -p "$out"
cp "$tmp/preact/package/dist/preact.mjs" "$out/preact.mjs"
sed 's/from"preact"/from".\/preact.mjs"/' "$tmp/preact/package/hooks/dist/hooks.mjs" > "$out/hooks.mjs"
cp "$tmp/htm/package/dist/htm.mjs" "$out/htm.mjs"
cp "$tmp/preact/package/LICENSE" "$out/LICENSE.preact"
cp "$tmp/htm/package/LICENSE" "$out/LICENSE.htm"
grep -q 'from"./preact.mjs"' "$out/hooks.mjs" || { echo "vendor-console: the hooks import was not rewritten" >&2; exit 1; }
(cd "$out" && sha256sum preact.mjs hooks.mjs htm.mjs > SHA256SUMS)
echo "vendor-console: preact $PREACT, htm $HTM in $out"
