#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: redis-server (the Redis-backed serving path),
# wrk (the serving load test), chromium (the web pages in a headless browser), Java 17 (Spark:
# the `--engine spark` parity tests run pyspark in local mode).
# Installs only what is missing; needs root and apt-get. Without them it says what is missing and
# the tests that need it skip with a message.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "warning: missing Debian packages (${need[*]}); install them as root: apt-get install -y ${need[*]}" >&2
fi
