#!/usr/bin/env bash
# Benchmarks of svc against the service it replaces (the "peer") and against bare aiohttp,
# each pair alternated A B A B A B on fresh processes, with ../shared/bench's harness.
#
#   bash bench/run.sh setup            # venvs in /tmp/bench, wrk, a snapshot of this checkout
#   bash bench/run.sh get put password fanout fanout-pg ceiling-get ceiling-fanout
#
# Results (JSONL, one line per run) land in /tmp/bench/results; bench/README.md quotes them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
KIT=${BENCH_KIT:-$REPO/../shared/bench}
WORK=${BENCH_WORK:-/tmp/bench}
ROUNDS=${ROUNDS:-3}
PY=$WORK/venv-tools/bin/python
RESULTS=$WORK/results
# The peer and svc both own a `users` table: each gets its own database on the bench cluster.
PEER_PG_URL=postgresql://benchpg@127.0.0.1:55433/bench
SVC_PG_URL=postgresql://benchpg@127.0.0.1:55433/svc_bench

svc=(--a-name svc --a "$WORK/venv-svc/bin/python -m svc" --a-env PORT={port} --a-env HOST=127.0.0.1
     --a-env BCRYPT_ROUNDS=12 --a-cwd /tmp)
peer=(--b-name peer --b "$WORK/venv-peer/bin/uvicorn app:app --host 127.0.0.1 --port {port}" --b-cwd "$KIT/peer")
ceiling=(--b-name ceiling --b "$WORK/venv-tools/bin/python $KIT/ceilings/aiohttp_ceiling.py --port {port}")

pair() {  # pair NAME SCENARIO ARGS... [-- LOAD ARGS]
    local name=$1 scenario=$2; shift 2
    (cd "$KIT" && "$PY" run_pair.py --scenario "$scenario" --rounds "$ROUNDS" --port 18080 \
        --out "$RESULTS/$name.jsonl" "$@") | tee "$RESULTS/$name.txt" | grep -E '^[a-z_0-9]+ +[0-9]' || true
}

for section in "$@"; do
    case $section in
    setup)
        command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
        mkdir -p "$RESULTS"
        python3 -m venv "$WORK/venv-peer" && "$WORK/venv-peer/bin/pip" install -q -r "$KIT/peer/requirements.txt"
        python3 -m venv "$WORK/venv-tools" && "$WORK/venv-tools/bin/pip" install -q aiohttp uvloop
        # A copy of the committed tree, so edits made while a benchmark runs cannot change it.
        rm -rf "$WORK/svc-src" && git -C "$REPO" archive --prefix=svc-src/ HEAD | tar -x -C "$WORK"
        python3 -m venv "$WORK/venv-svc" && "$WORK/venv-svc/bin/pip" install -q "$WORK/svc-src" \
            && "$WORK/venv-svc/bin/pip" install -q --force-reinstall --no-deps "$WORK/svc-src"
        ;;
    get|put|password) pair "$section-svc-vs-peer" "$section" "${svc[@]}" "${peer[@]}" ;;
    fanout)         pair fanout-svc-vs-peer fanout "${svc[@]}" "${peer[@]}" -- --clients 500 ;;
    fanout2000)     pair fanout2000-svc-vs-peer fanout "${svc[@]}" "${peer[@]}" -- --clients 2000 ;;
    ceiling-get)    pair get-svc-vs-ceiling get "${svc[@]}" "${ceiling[@]}" ;;
    ceiling-fanout) pair fanout-svc-vs-ceiling fanout "${svc[@]}" "${ceiling[@]}" -- --clients 500 ;;
    get-pg|put-pg|fanout-pg)
        bash "$KIT/pg.sh" init >/dev/null 2>&1 || true
        bash "$KIT/pg.sh" status >/dev/null 2>&1 || bash "$KIT/pg.sh" start
        bash "$KIT/pg.sh" psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'svc_bench'" | grep -q 1 \
            || bash "$KIT/pg.sh" psql -qc "CREATE DATABASE svc_bench"
        pair "${section%-pg}-pg-svc-vs-peer" "${section%-pg}" "${svc[@]}" --a-env DATABASE_URL=$SVC_PG_URL \
            "${peer[@]}" --b-env DATABASE_URL=$PEER_PG_URL
        ;;
    *) echo "unknown section: $section" >&2; exit 2 ;;
    esac
done
