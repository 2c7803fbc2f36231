# Shell pieces shared by the control-plane benchmarks (bench/xds.sh, bench/kube.sh). Sourced,
# not run. Callers set `set -euo pipefail` and `WORK` (their temp folder, holding
# lateend.log); `LATEEND_PID` and `DEBUG_PORT` once lateend runs.

# free_port: a port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_lateend_ready TENTHS: waits at most TENTHS x 0.1 s for lateend's /ready; exits the
# benchmark with lateend's log when it dies or never becomes ready.
wait_lateend_ready() {
  for _ in $(seq 1 "$1"); do
    curl -sf "http://127.0.0.1:$DEBUG_PORT/ready" >/dev/null 2>&1 && return 0
    kill -0 "$LATEEND_PID" 2>/dev/null || { cat "$WORK/lateend.log" >&2; echo "lateend exited" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$DEBUG_PORT/ready" >/dev/null \
    || { tail -20 "$WORK/lateend.log" >&2; echo "lateend never became ready" >&2; exit 1; }
}

# push_log: the last push computations of lateend's debug log (proxies, views, milliseconds,
# and for an endpoint-only push how many services' endpoints it translated).
push_log() {
  echo "--- lateend push computations (debug log: proxies, views, milliseconds, endpoint-only services) ---"
  grep "push computed" "$WORK/lateend.log" \
    | sed -E 's/^.*(proxies=[0-9]+ views=[0-9]+ elapsed_ms=[0-9]+( endpoint_only_services=[0-9]+)?).*$/\1/' \
    | tail -n 12 || true
}

# log_errors: lateend's error and panic lines, if any.
log_errors() {
  if grep -qiE "error|panic" "$WORK/lateend.log"; then
    echo "--- lateend log (errors) ---"
    grep -iE "error|panic" "$WORK/lateend.log" | head -20
  fi
}
