#!/usr/bin/env bash
# Mutation testing of the core packages with gremlins (go-gremlins/gremlins):
# each package's code is mutated one small change at a time (a < made <=,
# a == made !=, a + made -, …) and the package's tests run against every
# mutant. A mutant the tests do not notice "lived": either a missing test or
# an equivalent change (.bench/mutation.md lists the known ones and why).
#
#   .bench/mutation.sh                 every core package
#   .bench/mutation.sh queue webhook   only these (names under lib/)
#
# Only each package's own files are mutated, not its subpackages.
# Prints each package's test efficacy (killed / (killed + lived)) and keeps
# gremlins' full report, with every live mutant's file:line, in
# .bench/results/mutation-<package>.txt. It takes minutes per package (a
# build and a test run per mutant), so it is not part of CI: run it before
# changing a package's invariants, and after adding its tests.
#
# Environment: WORKERS (gremlins --workers, default 1: a shared machine),
# TIMEOUT_COEFFICIENT (default 10: a busy machine runs tests slowly, and a
# mutant that only looks slow must not count as killed).
set -euo pipefail
cd "$(dirname "$0")/.."

version=v0.6.0
if ! command -v gremlins >/dev/null 2>&1; then
	echo "installing gremlins $version (go install)…" >&2
	go install "github.com/go-gremlins/gremlins/cmd/gremlins@$version"
	PATH="$(go env GOPATH)/bin:$PATH"
fi

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
	packages=(queue store processor webhook strava connect)
	[ -d lib/notify ] && packages+=(notify)
fi

# gremlins sets each mutant's timeout to a multiple of its first, coverage,
# run; a cached test result makes that run take under a second and every
# mutant then "times out" while it is still being built.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-count=1"

results=.bench/results
mkdir -p "$results"
printf '%-10s %9s %7s %6s %12s %9s %8s\n' package efficacy killed lived "not covered" "timed out" minutes
status=0
for p in "${packages[@]}"; do
	if [ ! -d "lib/$p" ]; then
		echo "no package lib/$p" >&2
		status=1
		continue
	fi
	report="$results/mutation-$p.txt"
	start=$(date +%s)
	# --exclude-files '/': gremlins matches the regexp against each file's path
	# relative to lib/$p, so this leaves out subpackages (lib/strava/stravatest,
	# the test double, has its own tests and tripled strava's run).
	if ! gremlins unleash --workers "${WORKERS:-1}" --timeout-coefficient "${TIMEOUT_COEFFICIENT:-10}" \
		--exclude-files '/' "./lib/$p" >"$report" 2>&1; then
		echo "gremlins failed on lib/$p; see $report" >&2
		status=1
		continue
	fi
	minutes=$(( ($(date +%s) - start + 30) / 60 ))
	count() { sed -n "s/.*$1: \([0-9]*\).*/\1/p" "$report" | head -1; }
	efficacy=$(sed -n 's/.*Test efficacy: \([0-9.]*\)%.*/\1/p' "$report" | head -1)
	printf '%-10s %8s%% %7s %6s %12s %9s %8s\n' "$p" "${efficacy:-?}" "$(count Killed)" "$(count Lived)" \
		"$(count 'Not covered')" "$(count 'Timed out')" "$minutes"
done
echo "reports (every live mutant with its file:line): $results/mutation-<package>.txt"
exit $status
