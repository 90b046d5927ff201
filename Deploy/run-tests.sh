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

# The heavy agent tests (SIGKILL crash test, idle-slot WAL test) run one at a time first:
# beside other tests they have stalled the run (an open problem, see the closing notes);
# alone they take ~15 s.
for suite in AgentCrashTests IdleSlotTests; do
    echo "run-tests: heavy agent test $suite, on its own" >&2
    GOVEX_HEAVY_TESTS=1 timeout -s KILL 300 swift test --skip-build --filter "$suite"
done

swift test --skip-build
