# Sourced by tools/test and tools/demo: makes a Docker engine answer on a unix socket, and a test image.
# The caller must call stop_dockerd on exit (trap). Needs tools/bootstrap to have run (docker.io, busybox-static).
#
#   start_dockerd      uses the engine already answering on $TOUCHSTONE_DOCKER_SOCKET if one does; otherwise starts
#                      Debian's dockerd with its own socket, pidfile, data root and exec root under a temporary
#                      directory, ALWAYS with --bridge=none --iptables=false --ip-masq=false --ip-forward=false
#                      (no network set-up on the host: containers run with network mode none). Storage driver:
#                      overlay2, else vfs when overlay2 cannot work here. Exports TOUCHSTONE_DOCKER_SOCKET.
#   make_test_image    imports a busybox-static rootfs made locally (`docker import`, no registry) as
#                      touchstone-test-busybox:2 unless present; exports TOUCHSTONE_TEST_IMAGE.
#   stop_dockerd       stops the dockerd that start_dockerd started (never one it found running), removes its files.

dockerd_pid=""
dockerd_dir=""

dockerd_log() { printf 'dockerd: %s\n' "$*" >&2; }

# docker_answers SOCKET: true when an engine answers /_ping on the socket.
docker_answers() {
  [ -S "$1" ] && curl -fsS --max-time 2 --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1
}

# try_dockerd DRIVER: starts dockerd with a storage driver and waits up to 30 s for its socket to answer.
try_dockerd() {
  local driver="$1" deadline
  local socket="$dockerd_dir/docker.sock"
  mkdir -p "$dockerd_dir/data-$driver" "$dockerd_dir/exec"
  # setsid: its own process group, so that stop_dockerd also ends containerd and the shims it starts.
  setsid dockerd \
    --host "unix://$socket" --pidfile "$dockerd_dir/dockerd.pid" \
    --data-root "$dockerd_dir/data-$driver" --exec-root "$dockerd_dir/exec" \
    --storage-driver "$driver" \
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
    --userland-proxy=false --log-level=warn \
    >"$dockerd_dir/dockerd-$driver.log" 2>&1 &
  dockerd_pid=$!
  deadline=$((SECONDS + 30))
  until docker_answers "$socket"; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      dockerd_log "dockerd ($driver) exited before it answered; its log:"
      tail -n 15 "$dockerd_dir/dockerd-$driver.log" >&2
      dockerd_pid=""
      return 1
    fi
    if ((SECONDS > deadline)); then
      dockerd_log "dockerd ($driver) did not answer within 30 s; its log:"
      tail -n 15 "$dockerd_dir/dockerd-$driver.log" >&2
      stop_dockerd_process
      return 1
    fi
    sleep 0.2
  done
  export TOUCHSTONE_DOCKER_SOCKET="$socket"
  dockerd_log "dockerd $(dockerd --version | sed 's/^Docker version //') on $socket (storage driver $driver)"
}

# check_storage: a container can really run on this storage driver (overlay2 may start but fail to mount).
check_storage() {
  DOCKER_HOST="unix://$TOUCHSTONE_DOCKER_SOCKET" make_test_image >/dev/null &&
    DOCKER_HOST="unix://$TOUCHSTONE_DOCKER_SOCKET" docker run --rm --network none "$TOUCHSTONE_TEST_IMAGE" true \
      >>"$dockerd_dir/check.log" 2>&1
}

start_dockerd() {
  if [ -n "${TOUCHSTONE_DOCKER_SOCKET:-}" ] && docker_answers "$TOUCHSTONE_DOCKER_SOCKET"; then
    dockerd_log "using the engine already answering on $TOUCHSTONE_DOCKER_SOCKET"
    return 0
  fi
  command -v dockerd >/dev/null || { dockerd_log "dockerd is not installed: run tools/bootstrap"; return 1; }
  dockerd_dir="$(mktemp -d -t touchstone-dockerd-XXXXXX)"
  local driver
  for driver in overlay2 vfs; do
    if try_dockerd "$driver"; then
      if check_storage; then return 0; fi
      dockerd_log "containers cannot run on $driver here; trying the next storage driver"
      tail -n 5 "$dockerd_dir/check.log" >&2
      stop_dockerd_process
    fi
  done
  dockerd_log "no storage driver works"
  return 1
}

make_test_image() {
  local image="touchstone-test-busybox:2" rootfs
  export TOUCHSTONE_TEST_IMAGE="$image"
  if DOCKER_HOST="unix://$TOUCHSTONE_DOCKER_SOCKET" docker image inspect "$image" >/dev/null 2>&1; then return 0; fi
  rootfs="$(mktemp -d -t touchstone-rootfs-XXXXXX)"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
  cp /bin/busybox "$rootfs/bin/busybox"
  local applet
  for applet in $(busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  tar -C "$rootfs" -c . | DOCKER_HOST="unix://$TOUCHSTONE_DOCKER_SOCKET" docker import \
    --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
  rm -rf "$rootfs"
  dockerd_log "imported $image from a local busybox-static rootfs"
}

stop_dockerd_process() {
  [ -n "$dockerd_pid" ] || return 0
  kill -TERM -- "-$dockerd_pid" 2>/dev/null || kill -TERM "$dockerd_pid" 2>/dev/null || true
  local deadline=$((SECONDS + 20))
  while kill -0 "$dockerd_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  kill -KILL -- "-$dockerd_pid" 2>/dev/null || true
  wait "$dockerd_pid" 2>/dev/null || true
  dockerd_pid=""
  unset TOUCHSTONE_DOCKER_SOCKET
}

stop_dockerd() {
  stop_dockerd_process
  if [ -n "$dockerd_dir" ]; then
    # vfs/overlay data can hold mounts: unmount what is left under the directory before removing it.
    # (grep finds nothing in the usual case: `|| true`, for callers under `set -o pipefail`.)
    { grep -o " $dockerd_dir[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r mount; do
      umount "$mount" 2>/dev/null || true
    done
    rm -rf "$dockerd_dir"
    dockerd_dir=""
  fi
}
