# Shell pieces shared by the proxy benchmarks (bench/run.sh, bench/mtls.sh, bench/xds-proxy.sh). Sourced,
# not run. Callers set `set -euo pipefail`, `LOADGEN` (the lateen-loadgen binary),
# `SECONDS_PER_RUN` and `RATE`, and keep the PIDs they start in the `pids` array; the EXIT
# trap set here kills them, so an interrupted run leaves nothing behind.

TICKS=$(getconf CLK_TCK)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# proxy_bench_binaries: installs the test tools (Envoy in .venv), builds release lateen-proxy,
# lateen-loadgen and lateen-otlp-receiver (run.sh's tracing rows' sink) unless BIN_DIR names a folder that has them, and sets BIN_DIR, ENVOY and
# LOADGEN; results go to bench/results.
proxy_bench_binaries() {
  BIN_DIR="${BIN_DIR:-}"
  bash scripts/install-test-deps.sh >/dev/null
  if [ -z "$BIN_DIR" ]; then
    cargo build --release -q -p lateen-proxy -p lateen-loadgen
    cargo build --release -q -p lateen-test-support --bin lateen-otlp-receiver
    BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/release"
  fi
  ENVOY="$PWD/.venv/bin/envoy"
  LOADGEN="$BIN_DIR/lateen-loadgen"
  mkdir -p bench/results
}

# wait_port PORT [HOST]: waits (at most 10 s) until something accepts on HOST:PORT.
wait_port() {
  local host=${2:-127.0.0.1}
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "$host:$1 never opened" >&2
  return 1
}
# require_free HOST:PORT...: fails when any of them already accepts connections, so a
# benchmark never measures a stale process from an earlier run.
require_free() {
  local hp
  for hp in "$@"; do
    if (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null; then echo "$hp is in use; stop what uses it first" >&2; exit 1; fi
  done
}
# cpu_ticks "PID..." and rss_kb "PID...": summed over the PIDs (a two-sidecar hop is one
# target).
cpu_ticks() { local pid total=0; for pid in $1; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }
# Peak (VmHWM) and current (VmRSS) resident set, in KiB.
rss_kb() { local pid total=0; for pid in $1; do total=$((total + $(awk '/VmHWM/ {print $2}' "/proc/$pid/status"))); done; echo "$total"; }
vmrss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# cpu_per_1k TICKS REQUESTS: CPU milliseconds per 1000 successful requests (null when none
# succeeded, so a failing run cannot look cheap).
cpu_per_1k() { awk -v t="$1" -v hz="$TICKS" -v n="${2:-0}" 'BEGIN { if (n > 0) printf "%.2f", (t / hz) * 1000 / (n / 1000); else printf "null" }'; }

# measure NAME H1_URL H2_URL PID [HOST]: one target's saturation runs (wrk, then h2load),
# its latency at $RATE req/s (lateen-loadgen) and, for a proxy (PID ≠ 0), the CPU per 1000
# requests and peak RSS; prints one JSON object. HOST, when given, is sent as Host /
# :authority (virtual-host routing through a proxy).
measure() {
  local name=$1 url=$2 h2_url=$3 pid=$4 host=${5:-}
  local wrk_host=() h2_host=() lg_host=()
  if [ -n "$host" ]; then
    wrk_host=(-H "Host: $host"); h2_host=(-H ":authority: $host"); lg_host=(--host "$host")
  fi
  # Warm up connections and pools.
  taskset -c 1 wrk -t1 -c32 -d2s "${wrk_host[@]}" "$url" >/dev/null
  local before after wrk_out rps requests
  before=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  wrk_out=$(taskset -c 1 wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" "${wrk_host[@]}" "$url")
  after=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$wrk_out")
  requests=$(awk '/requests in/ {print $1}' <<<"$wrk_out")
  # Non-2xx answers would make a broken route look fast: count them and report them.
  local non2xx
  non2xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$wrk_out")
  local cpu_ms_per_1k
  cpu_ms_per_1k=$(cpu_per_1k "$((after - before))" "$requests")
  local h2_before h2_after h2_out h2_rps h2_requests h2_cpu h2_failed
  h2_before=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  h2_out=$(taskset -c 1 h2load -c32 -m10 -D "$SECONDS_PER_RUN" "${h2_host[@]}" "$h2_url" 2>&1)
  h2_after=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  h2_rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$h2_out")
  h2_requests=$(awk '/^requests:/ {print $8}' <<<"$h2_out")
  # "status codes: N 2xx, N 3xx, N 4xx, N 5xx": everything but 2xx counts as failed.
  h2_failed=$(awk '/^status codes:/ {gsub(",", ""); print $5 + $7 + $9}' <<<"$h2_out")
  h2_cpu=$(cpu_per_1k "$((h2_after - h2_before))" "${h2_requests:-0}")
  local latency
  latency=$(taskset -c 1 "$LOADGEN" --rate "$RATE" --connections 16 --duration "$SECONDS_PER_RUN" "${lg_host[@]}" "$url")
  local rss=0
  [ "$pid" = 0 ] || rss=$(rss_kb "$pid")
  printf '{"target":"%s","h1_rps":%s,"h1_cpu_ms_per_1k":%s,"h1_non2xx":%s,"h2_rps":%s,"h2_cpu_ms_per_1k":%s,"h2_non2xx":%s,"latency":%s,"peak_rss_kb":%s}\n' \
    "$name" "$rps" "$cpu_ms_per_1k" "${non2xx:-0}" "${h2_rps:-0}" "$h2_cpu" "${h2_failed:-0}" "$latency" "$rss"
}

# summarize FILE.jsonl: the table and the lateen/Envoy ratios of measure's rows.
summarize() {
  python3 - "$1" <<'PY'
import json, sys
rows = {r["target"]: r for r in map(json.loads, open(sys.argv[1]))}
print(f'{"target":15} {"h1 req/s":>10} {"h1 cpu ms/1k":>13} {"h2 req/s":>10} {"h2 cpu ms/1k":>13} {"p50 us":>8} {"p99 us":>8} {"peak RSS MB":>11} {"non-2xx":>8}')
def num(value, width, digits):
    return f"{value:>{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'n/a':>{width}}"
def ratio(a, b):
    return f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "n/a"
for name, r in rows.items():
    l = r["latency"]
    bad = r.get("h1_non2xx", 0) + r.get("h2_non2xx", 0)
    print(f'{name:15} {num(r["h1_rps"], 10, 0)} {num(r["h1_cpu_ms_per_1k"], 13, 2)} {num(r["h2_rps"], 10, 0)} {num(r["h2_cpu_ms_per_1k"], 13, 2)} {l["p50_us"]:>8.0f} {l["p99_us"]:>8.0f} {r["peak_rss_kb"]/1024:>11.1f} {bad:>8}')
l, e = rows["lateen"], rows["envoy"]
print("lateen/envoy: h1 throughput %s, h2 throughput %s, p99 %s, h1 CPU/request %s, h2 CPU/request %s, peak RSS %s" % (
    ratio(l["h1_rps"], e["h1_rps"]), ratio(l["h2_rps"], e["h2_rps"]), ratio(l["latency"]["p99_us"], e["latency"]["p99_us"]),
    ratio(l["h1_cpu_ms_per_1k"], e["h1_cpu_ms_per_1k"]), ratio(l["h2_cpu_ms_per_1k"], e["h2_cpu_ms_per_1k"]), ratio(l["peak_rss_kb"], e["peak_rss_kb"])))
if "lateen+log" in rows and "envoy+log" in rows:
    ll, el = rows["lateen+log"], rows["envoy+log"]
    print("access logging on: lateen keeps %s of its h1 throughput (%s h2); lateen+log/envoy+log: h1 %s, h2 %s" % (
        ratio(ll["h1_rps"], l["h1_rps"]), ratio(ll["h2_rps"], l["h2_rps"]),
        ratio(ll["h1_rps"], el["h1_rps"]), ratio(ll["h2_rps"], el["h2_rps"])))
for percent in ("1", "100"):
    lt, et = rows.get(f"lateen+trace{percent}"), rows.get(f"envoy+trace{percent}")
    if lt and et:
        print("tracing at %s %%: lateen keeps %s of its h1 throughput (%s h2); lateen/envoy: h1 %s, h2 %s, h1 CPU/request %s" % (
            percent, ratio(lt["h1_rps"], l["h1_rps"]), ratio(lt["h2_rps"], l["h2_rps"]),
            ratio(lt["h1_rps"], et["h1_rps"]), ratio(lt["h2_rps"], et["h2_rps"]),
            ratio(lt["h1_cpu_ms_per_1k"], et["h1_cpu_ms_per_1k"])))
for name, r in rows.items():
    if r.get("h1_non2xx", 0) or r.get("h2_non2xx", 0):
        print(f"WARNING: {name}: {r.get('h1_non2xx', 0)} non-2xx answers under wrk, {r.get('h2_non2xx', 0)} under h2load: its throughput figures are not valid")
PY
}
