#!/bin/bash
# The main job (README "Set-up"): build, start the service, attach the software decoder to a VM name, and
# decode an H.264 stream through the vhost-user socket end to end, as a VM would.
#
# The service runs on a private D-Bus bus (no changes to the system bus, no installation), with its state
# in a temporary runtime directory; everything is stopped and removed at the end.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${BUILD_DIR:-$src/build-demo}
"$src/tools/deps.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Build"
if [ -f "$out/build.ninja" ]; then
        meson setup --reconfigure "$out" "$src" -Dffmpeg=enabled >/dev/null
else
        meson setup "$out" "$src" -Dffmpeg=enabled >/dev/null
fi
ninja -C "$out" >/dev/null
echo "built in $out"

tmp=$(mktemp -d /tmp/virtio-video-demo.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

step "Start a private bus and the service"
cat >"$tmp/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$tmp/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
dbus-daemon --nofork --nopidfile --nosyslog --config-file "$tmp/bus.conf" --print-address=3 3>"$tmp/address" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/address" ] && break; sleep 0.1; done
export DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$tmp/address")
echo "bus: $DBUS_SYSTEM_BUS_ADDRESS"
if [ "$(id -u)" -ne 0 ]; then
        # Attaching is a privileged call that the service checks with polkit; root passes without asking.
        # A private bus has no polkit, so a stand-in that says yes answers for it.
        echo "not root: starting a stand-in polkit authority on the private bus"
        "$out/tests/fakes/fake-polkit" "$DBUS_SYSTEM_BUS_ADDRESS" yes >"$tmp/polkit.out" 2>/dev/null &
        pids+=($!)
        for _ in $(seq 100); do grep -q ready "$tmp/polkit.out" 2>/dev/null && break; sleep 0.1; done
fi
VIRTIO_VIDEOD_WORKER="$out/service/worker/vhost-user-video" VIRTIO_VIDEO_BACKEND_DIR="$out/service/backend" \
        "$out/service/daemon/virtio-videod" --bus-address="$DBUS_SYSTEM_BUS_ADDRESS" \
        --runtime-dir="$tmp/run" --no-idle-exit 2>"$tmp/daemon.log" &
pids+=($!)
videoctl=("$out/cli/videoctl" --no-pager)
for _ in $(seq 100); do "${videoctl[@]}" show -P Version >/dev/null 2>&1 && break; sleep 0.1; done
run "${videoctl[@]}" show

step "Attach the software H.264 decoder (libavcodec) to VM 'demo-vm'"
printf '$ videoctl attach --vm demo-vm --backend ffmpeg\n'
sock=$("${videoctl[@]}" attach --vm demo-vm --backend ffmpeg)
echo "$sock"
run "${videoctl[@]}" list
run "${videoctl[@]}" status demo-vm/video0

step "What QEMU would need"
run "${videoctl[@]}" qemu-args demo-vm/video0

step "Make an H.264 stream and decode it through the socket, playing QEMU and the guest driver"
run "$out/tests/tools/make-stream" --codec h264 --size 320x240 --frames 30 --output "$tmp/demo.h264"
run "${videoctl[@]}" probe demo-vm/video0 --stream "$tmp/demo.h264" --stream-format h264
run "${videoctl[@]}" stats demo-vm/video0

step "Detach"
run "${videoctl[@]}" detach demo-vm/video0
run "${videoctl[@]}" list
echo
echo "Demo finished: the service attached a decoder, served a full decode over vhost-user, and detached it."
