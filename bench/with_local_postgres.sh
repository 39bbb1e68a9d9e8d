#!/usr/bin/env bash
# Runs the scenario benchmark on a throwaway local PostgreSQL server: initdb in a temp dir,
# listening on 127.0.0.1 only on a free port (as the `postgres` user when run as root), the
# benchmark with --storage postgres --pg-url <that server>, then the server is stopped and its
# files removed (also on Ctrl-C or failure).
#
#   bench/with_local_postgres.sh [BENCH_PROGRAM] -- <benchmark arguments>
#   bench/with_local_postgres.sh -- --scenario reference --iterations 3 [--batching]
#   bench/with_local_postgres.sh -- --scenario throughput --tasks 10000
#   bench/with_local_postgres.sh -- --scenario pickup --tasks 200
#
# BENCH_PROGRAM defaults to build/release/bench/durable_execution_bench. The server runs with
# PostgreSQL's defaults (fsync on) except listen_addresses and max_connections; set
# DE_BENCH_PG_OPTIONS to add server options (e.g. "-c synchronous_commit=off").
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${repo_root}/build/release/bench/durable_execution_bench"
if [[ $# -gt 0 && "$1" != "--" ]]; then
  bench="$1"
  shift
fi
if [[ $# -gt 0 && "$1" == "--" ]]; then shift; fi
if [[ ! -x "${bench}" ]]; then
  echo "benchmark program not found: ${bench} (build it: cmake --preset release && cmake --build --preset release)" >&2
  exit 2
fi

pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [[ -z "${pg_bin}" ]]; then
  pg_bin="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
fi
if [[ ! -x "${pg_bin}/initdb" ]]; then
  echo "PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql package" >&2
  exit 2
fi

as_postgres() {
  if [[ "$(id -u)" == 0 ]]; then
    su postgres -s /bin/bash -c "$1"
  else
    bash -c "$1"
  fi
}

pg_dir="$(mktemp -d /tmp/de-bench-postgres.XXXXXX)"
chmod 700 "${pg_dir}"
if [[ "$(id -u)" == 0 ]]; then chown postgres "${pg_dir}"; fi
cleanup() {
  as_postgres "'${pg_bin}/pg_ctl' -D '${pg_dir}/data' -m fast -w stop >/dev/null 2>&1" || true
  rm -rf "${pg_dir}"
}
trap cleanup EXIT

as_postgres "'${pg_bin}/initdb' -D '${pg_dir}/data' -A trust -U postgres >'${pg_dir}/initdb.log'"
started=""
for port in $(seq 55432 55531); do
  if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then continue; fi
  if as_postgres "'${pg_bin}/pg_ctl' -D '${pg_dir}/data' -l '${pg_dir}/server.log' -w -t 60 \
      -o \"-p ${port} -k '${pg_dir}' -c listen_addresses=127.0.0.1 -c max_connections=200 ${DE_BENCH_PG_OPTIONS:-}\" \
      start >/dev/null"; then
    started="${port}"
    break
  fi
done
if [[ -z "${started}" ]]; then
  echo "could not start PostgreSQL; server log:" >&2
  cat "${pg_dir}/server.log" >&2 || true
  exit 1
fi
url="postgresql://postgres@127.0.0.1:${started}/postgres"
echo "PostgreSQL $("${pg_bin}/postgres" --version | awk '{print $3}') on 127.0.0.1:${started}" >&2
"${bench}" --storage postgres --pg-url "${url}" "$@"
