#!/usr/bin/env bash
# Installs what ocimount needs and the machine lacks: libfuse2 (the FUSE addon, built on install
# from native/fuse, links libfuse.so.2), make, g++ and python3 (node-gyp builds that addon),
# fusermount (from fuse3; on Debian 12 fuse and fuse3 conflict and `fuse3 libfuse2` works),
# GNU tar/attr tools the tests use, the conformance matrix's tar writers, then node modules,
# the addon and the build.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || need+=(libfuse2)
command -v fusermount >/dev/null || command -v fusermount3 >/dev/null || need+=(fuse3)
command -v make >/dev/null || need+=(make)
command -v g++ >/dev/null || need+=(g++)
command -v python3 >/dev/null || need+=(python3)
command -v getfattr >/dev/null || need+=(attr)
command -v zstd >/dev/null || need+=(zstd)
command -v xz >/dev/null || need+=(xz-utils)
# The conformance matrix archives one tree with every writer: bsdtar, Go's archive/tar (umoci),
# skopeo, Python tarfile; setcap gives a real security.capability xattr.
command -v bsdtar >/dev/null || need+=(libarchive-tools)
command -v umoci >/dev/null || need+=(umoci)
command -v skopeo >/dev/null || need+=(skopeo)
# The registry tests: CNCF Distribution (`docker-registry serve`, started by the tests on a free
# loopback port, never the system service) and htpasswd for its Basic auth (bcrypt).
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
# script(1) gives the registry progress test a terminal (essential on Debian; minimal images may lack it).
command -v script >/dev/null || need+=(bsdutils)
command -v setcap >/dev/null || [ -x /usr/sbin/setcap ] || [ -x /sbin/setcap ] || need+=(libcap2-bin)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null; then
    # Ubuntu 24.04 renamed libfuse2.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]/libfuse2/libfuse2t64}" >/dev/null
  fi
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# npm ci builds the addon (the package's install script); a tree installed before it existed
# has none yet.
[ -f native/fuse/build/Release/ocimount_fuse.node ] && [ -f native/inflate/build/Release/ocimount_inflate.node ] && [ -f native/tarscan/build/Release/ocimount_tarscan.node ] || npm run build:native --silent
npm run build --silent
