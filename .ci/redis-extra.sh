#!/usr/bin/env bash
# Two extra Redis servers for tests of the other URL schemes: one listening
# only on a unix socket (unix://) and one speaking TLS only (rediss://) with
# a throwaway CA and certificate made here. Both keep nothing on disk but
# their socket and pid files in DIR.
#
#   bash .ci/redis-extra.sh start DIR   # start both; writes DIR/env
#   . DIR/env                           # exports the test variables below
#   bash .ci/redis-extra.sh stop DIR    # stop both (the pids in DIR)
#
# DIR/env sets STRAVAHOOK_TEST_REDIS_UNIX_URL (unix:///DIR/redis.sock),
# STRAVAHOOK_TEST_REDISS_URL (rediss://127.0.0.1:PORT) and
# STRAVAHOOK_TEST_REDIS_CA (the CA that signed the server's certificate).
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
dir=$(mkdir -p "$dir" && cd "$dir" && pwd)

stop() {
  for name in unix tls; do
    if [ -f "$dir/$name.pid" ]; then
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$dir/$name.pid"
    fi
  done
}

wait_ping() { # redis-cli arguments…
  for _ in $(seq 1 50); do
    redis-cli "$@" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

case "$cmd" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

# A throwaway CA and a server certificate for 127.0.0.1 and localhost.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stravahook test CA" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 2 -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null

common=(--daemonize yes --save "" --appendonly no --dir "$dir")
redis-server "${common[@]}" --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
  --pidfile "$dir/unix.pid" --logfile "$dir/unix.log"
wait_ping -s "$dir/redis.sock" || { cat "$dir/unix.log" >&2; echo "unix-socket redis did not start" >&2; exit 1; }

# A free port for TLS: try a few random ones.
tls_port=""
for _ in $(seq 1 20); do
  port=$((20000 + RANDOM % 20000))
  redis-server "${common[@]}" --port 0 --bind 127.0.0.1 --tls-port "$port" \
    --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
    --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no \
    --pidfile "$dir/tls.pid" --logfile "$dir/tls.log" || continue
  if wait_ping --tls --cacert "$dir/ca.crt" -h 127.0.0.1 -p "$port"; then tls_port=$port; break; fi
  [ -f "$dir/tls.pid" ] && kill "$(cat "$dir/tls.pid")" 2>/dev/null || true
  rm -f "$dir/tls.pid"
done
[ -n "$tls_port" ] || { cat "$dir/tls.log" >&2; stop; echo "TLS redis did not start" >&2; exit 1; }

cat >"$dir/env" <<ENV
export STRAVAHOOK_TEST_REDIS_UNIX_URL=unix://$dir/redis.sock
export STRAVAHOOK_TEST_REDISS_URL=rediss://127.0.0.1:$tls_port
export STRAVAHOOK_TEST_REDIS_CA=$dir/ca.crt
ENV
echo "unix-socket redis at $dir/redis.sock, TLS redis at 127.0.0.1:$tls_port (CA $dir/ca.crt)"
