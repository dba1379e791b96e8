#!/usr/bin/env bash
# Run the TUF client conformance suite (../shared/tuf-conformance) against our
# tuf-conformance-client binary. Extra arguments go to pytest (e.g. -x, -k name).
# Exit status: pytest's (0 only when every test passes); 0 with a "SKIPPED" line when the
# suite is absent, so a CI driver can call this unconditionally.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUITE_REL="$ROOT/../shared/tuf-conformance"
if [ ! -d "$SUITE_REL" ]; then
    echo "conformance: SKIPPED, suite not found at $SUITE_REL"
    exit 0
fi
SUITE=$(cd "$SUITE_REL" && pwd)
VENV=${TUFCONF_VENV:-${OTA_VENV:-/tmp/tufconf-venv}}

if ! command -v faketime >/dev/null 2>&1; then
    echo "conformance: installing faketime" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q && $SUDO apt-get install -y -q faketime
fi

if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c "import tuf_conformance" 2>/dev/null; then
    echo "conformance: creating venv $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "securesystemslib[crypto]==1.4.0" "tuf==7.0.0" \
        "pytest==9.1.1" "pytest-json-report==1.5.0"
    # Not -e: the suite folder may be read-only.
    "$VENV/bin/pip" install -q "$SUITE"
fi

(cd "$ROOT" && cargo build --release --bin tuf-conformance-client)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/tuf-conformance-client"

cd "$SUITE"
"$VENV/bin/pytest" -q -p no:cacheprovider tuf_conformance --entrypoint "$BIN" "$@"
