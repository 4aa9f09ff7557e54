#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to a mounted demo image:
# installs what is missing (FUSE packages, node modules, the build), writes the built-in demo
# image, mounts it and shows how to look around.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
work=${OCIMOUNT_DEMO_DIR:-/tmp/ocimount-demo}
mkdir -p "$work/mnt"
if grep -q " $work/mnt " /proc/self/mountinfo; then node bin/ocimount umount "$work/mnt"; fi
node bin/ocimount demo -o "$work/demo.tar"
node bin/ocimount "$work/demo.tar" "$work/mnt"
echo
echo "== ls $work/mnt"; ls "$work/mnt"
echo "== $work/mnt/history"; cat "$work/mnt/history"
echo "== find $work/mnt/rootfs/app"; find "$work/mnt/rootfs/app"
echo "== cat rootfs/app/trace.log (the build log the seeds wanted out of the image)"; cat "$work/mnt/rootfs/app/trace.log"
cat <<MSG

Look around:  ls -la $work/mnt/rootfs    cat $work/mnt/config.json    ls $work/mnt/layers
Which layer made a file, without a mount:  node bin/ocimount blame $work/demo.tar /app/trace.log
When done:    node bin/ocimount umount $work/mnt
MSG
