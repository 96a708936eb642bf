#!/usr/bin/env bash
# Start a local standalone Spark cluster (master + one worker) on 127.0.0.1; prints the master URL.
# Usage: infra/spark/start.sh [--state DIR] [--cores 2] [--memory 2g]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m infra.spark.cluster start "$@"
