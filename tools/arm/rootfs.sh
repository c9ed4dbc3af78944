#!/usr/bin/env bash
# tools/arm/rootfs.sh ARCH: a Debian bookworm root filesystem for ARCH (arm64 | armhf), made
# once with debootstrap and run through qemu-user-static (binfmt_misc), cached outside the
# repository in $SOFTRELAY_ARM_CACHE (default /var/cache/softrelay-arm) so a second run does
# not bootstrap again. Prints the root filesystem's path on its last line. Needs root.
#
# What is in it: python3 with venv and headers, gcc (softrelay's extensions are built there),
# and on armhf, where PyPI has few wheels, numpy and PyYAML from Debian (the test venv sees
# them through --system-site-packages).
set -euo pipefail
arch=${1:?usage: rootfs.sh arm64|armhf}
cache=${SOFTRELAY_ARM_CACHE:-/var/cache/softrelay-arm}
mirror=${SOFTRELAY_ARM_MIRROR:-http://deb.debian.org/debian}
root=$cache/bookworm-$arch
stamp=$root/.softrelay-rootfs-v1   # bump the suffix when the package list below changes

packages=python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates
case $arch in
  arm64) qemu=qemu-aarch64 ;;
  armhf) qemu=qemu-arm; packages=$packages,python3-numpy,python3-yaml ;;
  *) echo "rootfs.sh: unknown architecture '$arch' (arm64 or armhf)" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || { echo "rootfs.sh: debootstrap and binfmt_misc need root" >&2; exit 1; }
for tool in debootstrap update-binfmts; do
  command -v $tool >/dev/null || { echo "rootfs.sh: $tool is missing: apt-get install" \
    "qemu-user-static binfmt-support debootstrap (make system-deps does)" >&2; exit 1; }
done

# binfmt_misc: the kernel runs ARM binaries through qemu-user-static
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || {
    echo "rootfs.sh: the kernel refused to mount binfmt_misc: ARM binaries cannot run" >&2
    exit 1; }
fi
update-binfmts --enable $qemu >/dev/null 2>&1 || true
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/$qemu 2>/dev/null; then
  echo "rootfs.sh: binfmt_misc has no enabled $qemu entry (update-binfmts --enable $qemu)" >&2
  exit 1
fi

if [ -e "$stamp" ]; then
  echo "rootfs: $root (cached)" >&2
else
  echo "rootfs: bootstrapping bookworm $arch minbase into $root (several minutes)" >&2
  rm -rf "$root"; mkdir -p "$cache"
  start=$(date +%s)
  debootstrap --arch=$arch --variant=minbase --include=$packages bookworm "$root" "$mirror" \
    > "$cache/debootstrap-$arch.log" 2>&1 || {
      echo "rootfs.sh: debootstrap failed; the last lines of $cache/debootstrap-$arch.log:" >&2
      tail -20 "$cache/debootstrap-$arch.log" >&2; exit 1; }
  rm -rf "$root/var/cache/apt/archives/"*.deb
  echo "bootstrapped in $(( $(date +%s) - start )) s" > "$stamp"
  echo "rootfs: $(cat "$stamp")" >&2
fi
echo "$root"
