#!/bin/bash
# Installs every build and test dependency from Debian 12's archive, when something is missing.
# Needs root for apt-get; without root it prints the command to run and fails.
set -euo pipefail

packages=(
        # build
        meson ninja-build pkg-config gcc clang libclang-rt-14-dev
        libsystemd-dev libglib2.0-dev libcmocka-dev libv4l-dev
        libavcodec-dev libavutil-dev libswscale-dev libseccomp-dev
        # man pages and shell completion
        scdoc man-db bash-completion
        # system tests: private bus, socket activation, polkit files
        dbus-daemon systemd polkitd
        # tests/vm: a QEMU TCG guest with vicodec built out of tree (the kernel, its headers and
        # v4l-utils are fetched by the harness itself with apt-get download)
        qemu-system-x86 busybox-static cpio kmod make gcc-12 bc flex bison libelf-dev xz-utils
        # tools/demo.sh and the benchmarks
        procps jq gnuplot-nox
        # tests/integration/test-videoctl.py (JSON parsing, process handling)
        python3
)

missing=()
for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
                missing+=("$p")
        fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
        echo "Missing packages: ${missing[*]}" >&2
        echo "Run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
