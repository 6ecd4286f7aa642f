# Sourced by tools/demo: makes the image its training tasks run in when they run as containers.
#
#   make_demo_image   builds, once, a Debian bookworm root file system holding python3 and python3-sklearn from
#                     Debian's packages (debootstrap, minbase variant), caches it as a tarball under
#                     ${XDG_CACHE_HOME:-~/.cache}/touchstone, and imports it with `docker import` into the engine on
#                     $TOUCHSTONE_DOCKER_SOCKET as touchstone-demo-sklearn:1 unless that image is there already.
#                     Exports TOUCHSTONE_DEMO_IMAGE. No registry is used: only Debian's package archive.

demo_image_log() { printf 'demo-image: %s\n' "$*" >&2; }

make_demo_image() {
  local image="touchstone-demo-sklearn:1"
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/touchstone"
  local tarball="$cache/demo-sklearn-bookworm.tar"
  export TOUCHSTONE_DEMO_IMAGE="$image"
  if DOCKER_HOST="unix://$TOUCHSTONE_DOCKER_SOCKET" docker image inspect "$image" >/dev/null 2>&1; then return 0; fi
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { demo_image_log "debootstrap is not installed: run tools/bootstrap"; return 1; }
    mkdir -p "$cache"
    local rootfs mirror
    rootfs="$(mktemp -d -t touchstone-demo-rootfs-XXXXXX)"
    # The same Debian archive apt uses here.
    mirror="$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    demo_image_log "debootstrap bookworm with python3 and python3-sklearn from $mirror (once; a few minutes)"
    if ! debootstrap --variant=minbase --include=python3,python3-sklearn bookworm "$rootfs" "$mirror" \
      >"$cache/debootstrap.log" 2>&1; then
      demo_image_log "debootstrap failed; its log: $cache/debootstrap.log"
      tail -n 5 "$cache/debootstrap.log" >&2
      rm -rf "$rootfs"
      return 1
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  DOCKER_HOST="unix://$TOUCHSTONE_DOCKER_SOCKET" docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'ENV LANG=C.UTF-8' "$tarball" "$image" >/dev/null
  demo_image_log "imported $image from $tarball"
}
