#!/bin/sh
# Builds a local Python 3.11 base image (Debian bookworm + python3, python3-venv, python3-pip)
# for machines that cannot pull python:3.11-slim from a registry, then builds Klamm on it:
#
#   sudo docker/build-base-image.sh                        # Debian's public mirror
#   sudo docker/build-base-image.sh http://MIRROR/debian   # or KLAMM_DEBIAN_MIRROR=... in the env
#   docker build --build-arg BASE_IMAGE=klamm-base:bookworm -t klamm:latest .
#   KLAMM_BASE_IMAGE=klamm-base:bookworm docker compose build
#
# Needs root (debootstrap, chroot), debootstrap and a running Docker engine. Bookworm's
# python3 is CPython 3.11, the version the Dockerfile expects.
#
# Environment:
#   KLAMM_DEBIAN_MIRROR  Debian mirror URL (default http://deb.debian.org/debian); the first
#                        argument overrides it.
#   KLAMM_BASE_IMAGE     Tag of the resulting image (default klamm-base:bookworm).
#   KLAMM_SUITE          Debian suite (default bookworm).
set -eu

MIRROR=${1:-${KLAMM_DEBIAN_MIRROR:-http://deb.debian.org/debian}}
TAG=${KLAMM_BASE_IMAGE:-klamm-base:bookworm}
SUITE=${KLAMM_SUITE:-bookworm}

if [ "$(id -u)" -ne 0 ]; then
    echo "build-base-image.sh: run as root (debootstrap and chroot need it)" >&2
    exit 1
fi
command -v debootstrap > /dev/null || { echo "install debootstrap first" >&2; exit 1; }
command -v docker > /dev/null || { echo "install Docker first" >&2; exit 1; }

ROOTFS=$(mktemp -d /tmp/klamm-rootfs.XXXXXX)
cleanup() {
    # Unmount anything a failed chroot step left mounted before removing the tree.
    for m in proc sys dev/pts dev; do
        mountpoint -q "$ROOTFS/$m" 2> /dev/null && umount "$ROOTFS/$m" || true
    done
    rm -rf "$ROOTFS"
}
trap cleanup EXIT INT TERM

echo "==> debootstrap $SUITE from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR"

echo "==> trimming the tree"
# The image gets apt sources for the same mirror so `apt-get install` works inside it too.
echo "deb $MIRROR $SUITE main" > "$ROOTFS/etc/apt/sources.list"
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
# The Dockerfile calls `python`, as in the official python images.
ln -sf python3 "$ROOTFS/usr/bin/python"

echo "==> docker import $TAG"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$TAG"
docker run --rm "$TAG" python3 --version
echo "==> built $TAG"
