# Sourced by tools/test, tools/demo and tools/bench: starts SQS-compatible servers on 127.0.0.1 and exports where
# they are. The caller must call stop_sqs_servers on exit (trap). Needs tools/bootstrap to have run.
#
#   start_ministack  ministack with AUTH=true (SigV4 signatures and IAM policies checked), a random root key, and an
#                    IAM user "touchstone" whose key it exports: TOUCHSTONE_SQS_ENDPOINT, TOUCHSTONE_SQS_ACCESS_KEY_ID,
#                    TOUCHSTONE_SQS_SECRET_ACCESS_KEY, TOUCHSTONE_SQS_REGION.
#   start_moto       moto_server; exports TOUCHSTONE_MOTO_ENDPOINT.
#   start_html503    a server answering every POST with an HTML 503 page; exports TOUCHSTONE_HTML503_ENDPOINT.

sqs_server_pids=()
sqs_server_dir="$(mktemp -d -t touchstone-sqs-XXXXXX)"

sqs_log() { printf 'sqs-servers: %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_http URL NAME PID: polls for up to 30 s; fails if the process exits or the deadline passes.
wait_for_http() {
  local url="$1" name="$2" pid="$3" deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      sqs_log "$name exited before it was ready; its log:"; tail -n 30 "$sqs_server_dir/$name.log" >&2; return 1
    fi
    if ((SECONDS > deadline)); then
      sqs_log "$name was not ready within 30 s; its log:"; tail -n 30 "$sqs_server_dir/$name.log" >&2; return 1
    fi
    sleep 0.2
  done
}

start_ministack() {
  local repo port root_key root_secret
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  port="$(free_port)"
  root_key="ROOT$(python3 -c 'import secrets; print(secrets.token_hex(8).upper())')"
  root_secret="$(python3 -c 'import secrets; print(secrets.token_urlsafe(30))')"
  # BIND_HOST: ministack binds every interface by default. AUTH=true: SigV4 verified, IAM policies enforced.
  # setsid: its own process group, so that stopping it also stops the hypercorn workers it may start.
  BIND_HOST=127.0.0.1 GATEWAY_PORT="$port" AUTH=true SERVICES=sqs,iam,sts LOG_LEVEL=WARNING \
    AWS_ACCESS_KEY_ID="$root_key" AWS_SECRET_ACCESS_KEY="$root_secret" MINISTACK_REGION=us-east-1 \
    TMPDIR="$sqs_server_dir" setsid "$repo/.venv-ministack/bin/ministack" >"$sqs_server_dir/ministack.log" 2>&1 &
  local pid=$!
  sqs_server_pids+=("$pid")
  wait_for_http "http://127.0.0.1:$port/_ministack/health" ministack "$pid" || return 1
  cat >"$sqs_server_dir/policy.json" <<'JSON'
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "arn:aws:sqs:*:*:*"}]}
JSON
  local key
  key="$(MINISTACK_ROOT_ACCESS_KEY_ID="$root_key" MINISTACK_ROOT_SECRET_ACCESS_KEY="$root_secret" \
    "$repo/.venv-ministack/bin/python" "$repo/tools/lib/ministack-iam-user.py" "http://127.0.0.1:$port" touchstone \
    "$sqs_server_dir/policy.json")" || { sqs_log "cannot create ministack's IAM user"; return 1; }
  export TOUCHSTONE_SQS_ENDPOINT="http://127.0.0.1:$port"
  export TOUCHSTONE_SQS_REGION=us-east-1
  TOUCHSTONE_SQS_ACCESS_KEY_ID="${key%% *}"
  TOUCHSTONE_SQS_SECRET_ACCESS_KEY="${key#* }"
  export TOUCHSTONE_SQS_ACCESS_KEY_ID TOUCHSTONE_SQS_SECRET_ACCESS_KEY
  sqs_log "ministack $("$repo/.venv-ministack/bin/python" -c 'from importlib.metadata import version; print(version("ministack"))') on $TOUCHSTONE_SQS_ENDPOINT (AUTH=true, IAM user touchstone)"
}

start_moto() {
  local repo port
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  port="$(free_port)"
  setsid "$repo/.venv-moto/bin/moto_server" -H 127.0.0.1 -p "$port" >"$sqs_server_dir/moto.log" 2>&1 &
  local pid=$!
  sqs_server_pids+=("$pid")
  wait_for_http "http://127.0.0.1:$port/moto-api/" moto "$pid" || return 1
  export TOUCHSTONE_MOTO_ENDPOINT="http://127.0.0.1:$port"
  sqs_log "moto_server $("$repo/.venv-moto/bin/python" -c 'from importlib.metadata import version; print(version("moto"))') on $TOUCHSTONE_MOTO_ENDPOINT"
}

start_html503() {
  local repo port
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  port="$(free_port)"
  python3 "$repo/tools/lib/html503_server.py" "$port" >"$sqs_server_dir/html503.log" 2>&1 &
  local pid=$!
  sqs_server_pids+=("$pid")
  wait_for_http "http://127.0.0.1:$port/count" html503 "$pid" || return 1
  export TOUCHSTONE_HTML503_ENDPOINT="http://127.0.0.1:$port"
}

stop_sqs_servers() {
  local pid
  for pid in "${sqs_server_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${sqs_server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  sqs_server_pids=()
  rm -rf "$sqs_server_dir"
}
