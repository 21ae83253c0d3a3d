#!/bin/bash
# Runs one test script inside a QEMU TCG guest that has the kernel's vicodec driver, and reports the
# guest's TAP on stdout (meson: protocol 'tap').
#
#   run-vm-test.sh --cache DIR --guest-script FILE [--bin FILE]... [--file FILE]... [--timeout SEC]
#                  [--name NAME]
#
# The guest is Debian 12's own kernel (the linux-image package matching the newest linux-headers-amd64)
# with vicodec.ko and v4l2-mem2mem.ko built out of tree from linux-source-6.1: Debian's kernel ships
# videodev and videobuf2 but leaves CONFIG_VIDEO_VICODEC and CONFIG_V4L2_MEM2MEM_DEV unset. Everything is
# fetched with `apt-get download` and built once under DIR (the meson build directory), so only the first
# run pays for it; a lock keeps concurrent tests from building it twice.
#
# In the guest, /init loads the modules, mounts a host directory over virtio-9p on /out and runs the
# guest script with the working directory /tmp; the script's stdout (TAP) goes to /out/tap, its stderr
# to /out/log, its exit status to /out/status. --bin copies a host program to /opt/vv/bin with the
# shared libraries ldd finds for it; --file copies a file to /opt/vv/share.
#
# When a prerequisite is missing on the host (no QEMU, the packages cannot be downloaded) it prints
# "1..0 # SKIP <reason>", which meson reports as a skip, never a pass. A guest that does not finish, or
# whose TAP is incomplete, fails the test with the console log on stderr.
set -euo pipefail

cache=
script=
name=
timeout=600
bins=()
files=()
while [ $# -gt 0 ]; do
        case $1 in
        --cache) cache=$2; shift 2 ;;
        --guest-script) script=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --bin) bins+=("$2"); shift 2 ;;
        --file) files+=("$2"); shift 2 ;;
        *) echo "run-vm-test.sh: unknown argument '$1'" >&2; exit 2 ;;
        esac
done
if [ -z "$cache" ] || [ -z "$script" ]; then
        echo "usage: run-vm-test.sh --cache DIR --guest-script FILE [--bin FILE]... [--file FILE]..." >&2
        exit 2
fi
[ -n "$name" ] || name=$(basename "$script" .sh)
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() {
        echo "run-vm-test: $*" >&2
}

skip() {
        echo "1..0 # SKIP $*"
        log "SKIP: $*"
        exit 0
}

fail() {
        echo "Bail out! $*"
        log "FAIL: $*"
        exit 1
}

# ---- host prerequisites --------------------------------------------------------------------------------
qemu=${QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || skip "$qemu not found (Debian package qemu-system-x86)"
for tool in apt-get apt-cache dpkg-deb cpio gzip xz tar make ldd; do
        command -v $tool >/dev/null || skip "$tool not found (tools/deps.sh lists the packages)"
done
command -v gcc-12 >/dev/null || skip "gcc-12 not found: Debian's kernel headers build modules with it"
[ -f "$script" ] || fail "guest script '$script' not found"
for b in "${bins[@]}" "${files[@]}"; do
        [ -f "$b" ] || fail "'$b' not found"
done

# ---- the cached base: kernel, modules, busybox, v4l-utils --------------------------------------------
# Bump when the layout of the base image changes, so an old build directory rebuilds it.
base_format=1

# The kernel ABI of the newest linux-headers-amd64, and the source version that matches it.
resolve_kernel() {
        local dep
        dep=$(apt-cache depends linux-headers-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-headers-\(.*\)-amd64$/\1/p' | head -n1)
        [ -n "$dep" ] || return 1
        abi=$dep
        kver=$abi-amd64
        srcver=$(apt-cache show "linux-headers-$kver" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
        [ -n "$srcver" ]
}

download() {
        local debs=$1
        rm -rf "$debs.tmp"
        mkdir -p "$debs.tmp"
        # apt-get download is run from the target directory; as root it warns that _apt cannot
        # write there, which is harmless.
        (cd "$debs.tmp" && apt-get download -q \
                "linux-image-$kver" "linux-headers-$kver" "linux-headers-$abi-common" \
                "linux-kbuild-6.1=$srcver" "linux-source-6.1=$srcver" \
                busybox-static v4l-utils libv4l-0 libv4lconvert0 kmod) >"$cache/download.log" 2>&1 || return 1
        rm -rf "$debs"
        mv "$debs.tmp" "$debs"
}

# Copies a program to the path $3 in the tree $1, with the shared libraries ldd finds for it at the same
# paths. LD_LIBRARY_PATH may point ldd at libraries extracted under the directory $4, which is then
# stripped from their paths.
copy_with_libs() {
        local dest=$1 prog=$2 at=$3 prefix=${4:-/nonexistent} lib guest
        mkdir -p "$dest$(dirname "$at")"
        cp -L "$prog" "$dest$at"
        ldd "$prog" >"$cache/ldd.out" 2>&1 || { cat "$cache/ldd.out" >&2; return 1; }
        if grep -q 'not found' "$cache/ldd.out"; then
                log "unresolved libraries of $prog:"
                cat "$cache/ldd.out" >&2
                return 1
        fi
        for lib in $(sed -n -e 's/.*=> \(\/[^ ]*\) .*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' "$cache/ldd.out"); do
                # A library of an extracted package goes where the package installs it.
                guest=${lib#"$prefix"}
                [ -e "$dest$guest" ] && continue
                mkdir -p "$dest$(dirname "$guest")"
                cp -L "$lib" "$dest$guest"
        done
}

build_base() {
        local debs=$cache/debs root=$cache/root kmod=$cache/kmod img=$cache/initramfs deb m kmodbin
        log "building the guest base image in $cache (kernel $kver, source $srcver)"
        download "$debs" || { sed 's/^/  /' "$cache/download.log" >&2; return 2; }

        rm -rf "$root" "$kmod" "$img"
        mkdir -p "$root" "$kmod" "$img"
        for deb in "$debs"/*.deb; do
                case $deb in */linux-source-*) continue ;; esac
                dpkg-deb -x "$deb" "$root"
        done
        # The headers' Makefile includes the common headers by absolute path.
        sed -i "s|^include /usr/src/|include $root/usr/src/|" "$root/usr/src/linux-headers-$kver/Makefile"

        # Only vicodec and the mem2mem framework are needed from the 140 MB source tarball.
        dpkg-deb --fsys-tarfile "$debs"/linux-source-6.1_*.deb |
                tar -xO ./usr/src/linux-source-6.1.tar.xz | xz -dc -T2 |
                tar -x -C "$kmod" --strip-components=4 \
                        linux-source-6.1/drivers/media/test-drivers/vicodec \
                        linux-source-6.1/drivers/media/v4l2-core/v4l2-mem2mem.c
        mv "$kmod"/vicodec/*.[ch] "$kmod"/ && rm -rf "$kmod/vicodec"
        [ -f "$kmod/v4l2-mem2mem.c" ] && [ -f "$kmod/vicodec-core.c" ] || { log "sources missing from linux-source-6.1"; return 1; }
        cat >"$kmod/Kbuild" <<-'EOF'
	obj-m := v4l2-mem2mem.o vicodec.o
	vicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o
	EOF
        make -C "$root/usr/src/linux-headers-$kver" M="$kmod" -j2 modules >"$cache/kbuild.log" 2>&1 ||
                { cat "$cache/kbuild.log" >&2; return 1; }

        # kmod is a multi-call binary named by argv[0]; the host's, or the one from the package.
        kmodbin=$cache/kmod-bin
        rm -rf "$kmodbin" && mkdir -p "$kmodbin"
        for m in depmod modprobe; do
                if command -v $m >/dev/null; then
                        ln -s "$(command -v $m)" "$kmodbin/$m"
                else
                        ln -s "$root/bin/kmod" "$kmodbin/$m"
                fi
        done
        mkdir -p "$root/lib/modules/$kver/updates"
        cp "$kmod"/vicodec.ko "$kmod"/v4l2-mem2mem.ko "$root/lib/modules/$kver/updates/"
        "$kmodbin/depmod" -b "$root" "$kver"

        # The guest: busybox, v4l2-ctl, and the modules vicodec and virtio-9p need.
        mkdir -p "$img"/{bin,sbin,dev,proc,sys,tmp,out,etc,usr/bin,usr/sbin,lib/modules/$kver}
        cp "$root/bin/busybox" "$img/bin/busybox"
        LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu \
                copy_with_libs "$img" "$root/usr/bin/v4l2-ctl" /usr/bin/v4l2-ctl "$root"
        for m in vicodec virtio_pci 9pnet_virtio 9p; do
                "$kmodbin/modprobe" -d "$root" -S "$kver" --show-depends "$m"
        done | awk '$1 == "insmod" { print $2 }' | sort -u >"$cache/modules.list"
        grep -q '/vicodec.ko' "$cache/modules.list" || { log "modprobe found no vicodec"; return 1; }
        while read -r m; do
                deb=${m#"$root"}
                mkdir -p "$img$(dirname "$deb")"
                cp "$m" "$img$deb"
        done <"$cache/modules.list"
        cp "$root/lib/modules/$kver"/modules.{builtin,builtin.modinfo,order} "$img/lib/modules/$kver/"
        "$kmodbin/depmod" -b "$img" "$kver"
        install -m 0755 "$here/guest-init.sh" "$img/init"

        cp "$root/boot/vmlinuz-$kver" "$cache/vmlinuz"
        (cd "$img" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$cache/base.cpio.gz"
        echo "$base_format $kver $srcver" >"$cache/base.stamp"
        # The extracted packages and the .deb files are not needed once the image is built.
        rm -rf "$root" "$debs"
        log "guest base image ready"
}

prepare_base() {
        local r=0
        resolve_kernel || skip "apt-cache knows no linux-headers-amd64 (Debian's package lists are needed: apt-get update)"
        if [ -f "$cache/base.stamp" ] && [ "$(cat "$cache/base.stamp")" = "$base_format $kver $srcver" ] &&
                [ -f "$cache/base.cpio.gz" ] && [ -f "$cache/vmlinuz" ] &&
                [ "$cache/base.cpio.gz" -nt "$here/guest-init.sh" ] && [ "$cache/base.cpio.gz" -nt "$0" ]; then
                return 0
        fi
        rm -f "$cache/base.stamp"
        build_base || r=$?
        case $r in
        0) ;;
        2) skip "apt-get download of the kernel, linux-source-6.1, busybox-static or v4l-utils failed:" \
                "$(grep -m1 '^E:' "$cache/download.log" || tail -n1 "$cache/download.log")" ;;
        *) fail "building the guest base image failed" ;;
        esac
}

exec 9>"$cache/base.lock"
flock 9
prepare_base
flock -u 9

# ---- this test's overlay: the guest script, our programs, their libraries ----------------------------
run=$cache/run-$name
rm -rf "$run"
mkdir -p "$run/overlay/opt/vv/bin" "$run/overlay/opt/vv/share" "$run/out"
install -m 0755 "$script" "$run/overlay/opt/vv/test.sh"
install -m 0644 "$here/guest-lib.sh" "$run/overlay/opt/vv/guest-lib.sh"
for b in "${bins[@]}"; do
        copy_with_libs "$run/overlay" "$b" "/opt/vv/bin/$(basename "$b")" || fail "cannot resolve the libraries of '$b'"
done
for f in "${files[@]}"; do
        cp "$f" "$run/overlay/opt/vv/share/"
done
# The kernel unpacks concatenated archives in order, the later ones adding to the earlier.
(cd "$run/overlay" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$run/overlay.cpio.gz"
cat "$cache/base.cpio.gz" "$run/overlay.cpio.gz" >"$run/initrd.img"

# ---- boot ------------------------------------------------------------------------------------------
log "booting the guest for '$name' (TCG, log in $run/console.log)"
qemu_status=0
timeout -k 10 "$timeout" "$qemu" \
        -accel tcg -nodefaults -no-user-config -display none -no-reboot \
        -m 1024 -smp 1 \
        -kernel "$cache/vmlinuz" -initrd "$run/initrd.img" \
        -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" \
        -serial "file:$run/console.log" \
        -fsdev "local,id=out,path=$run/out,security_model=none" \
        -device virtio-9p-pci,fsdev=out,mount_tag=out \
        </dev/null >"$run/qemu.log" 2>&1 || qemu_status=$?

console_tail() {
        echo "--- guest console (last 60 lines) ---" >&2
        tail -n 60 "$run/console.log" >&2 || true
        if [ -s "$run/out/log" ]; then
                echo "--- guest test stderr (last 100 lines) ---" >&2
                tail -n 100 "$run/out/log" >&2
        fi
        if [ -s "$run/qemu.log" ]; then
                echo "--- qemu ---" >&2
                cat "$run/qemu.log" >&2
        fi
}

[ "$qemu_status" -eq 124 ] && { console_tail; fail "the guest did not finish within ${timeout}s"; }
[ "$qemu_status" -eq 0 ] || { console_tail; fail "$qemu exited with status $qemu_status"; }
[ -f "$run/out/status" ] || { console_tail; fail "the guest wrote no exit status (see $run/console.log)"; }
status=$(cat "$run/out/status")
[ -f "$run/out/tap" ] && cat "$run/out/tap"
if ! grep -q '^1\.\.[0-9]' "$run/out/tap" 2>/dev/null; then
        console_tail
        fail "the guest test printed no TAP plan (exit status $status)"
fi
# A complete TAP stream says what failed; the log says why.
[ -s "$run/out/log" ] && sed 's/^/guest: /' "$run/out/log" >&2
if [ "$status" != 0 ]; then
        log "the guest test exited with status $status (guest files in $run/out)"
        exit 1
fi
exit 0
