#!/usr/bin/env bash
# Prints the path of the Vercel CLI (vercel@58.10.0), installing it with npm
# into VERCEL_CLI_DIR (default ~/.cache/stravahook-vercel) the first time.
# Used by .ci/vercel-check.sh and .bench/deployed.sh.
set -euo pipefail
cli_dir=${VERCEL_CLI_DIR:-$HOME/.cache/stravahook-vercel}
if [ ! -x "$cli_dir/node_modules/.bin/vercel" ]; then
  mkdir -p "$cli_dir"
  [ -f "$cli_dir/package.json" ] || echo '{"private":true}' >"$cli_dir/package.json"
  (cd "$cli_dir" && npm i -E vercel@58.10.0 --no-audit --no-fund --loglevel=error) >&2
fi
echo "$cli_dir/node_modules/.bin/vercel"
