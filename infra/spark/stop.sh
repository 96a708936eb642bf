#!/usr/bin/env bash
# Stop the local standalone Spark cluster started by start.sh (same --state).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m infra.spark.cluster stop "$@"
