#!/usr/bin/env bash
# Builds and runs every test. Tests that need PostgreSQL use the server named by
# GOVEX_TEST_PG (a superuser conninfo), or start a throwaway cluster of their own.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --build-tests
bin="$(swift build --show-bin-path)"

# The decoder's mutation suite once more under a memory cap: a length field that
# made it allocate beyond its limits (1 MiB bodies, 1,000 records) would kill it.
echo "run-tests: mutation suite under ulimit -v 1572864 (1.5 GiB)" >&2
(ulimit -v 1572864 && "$bin/govexPackageTests.xctest" --testing-library swift-testing --filter MutatedBatchTests)

# A backstop: the suite takes under a minute; a hang must fail CI, not eat its 90 minutes.
timeout --kill-after=15 900 swift test --skip-build
