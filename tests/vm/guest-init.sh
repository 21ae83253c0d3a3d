#!/bin/busybox sh
# /init of the test guest (tests/vm/run-vm-test.sh): loads vicodec and virtio-9p, mounts the host's result
# directory on /out, runs /opt/vv/test.sh in /tmp with stdout to /out/tap, stderr to /out/log and its
# exit status to /out/status, then powers off. Messages for the host go to the console (ttyS0).
/bin/busybox --install -s
export PATH=/opt/vv/bin:/usr/bin:/usr/sbin:/bin:/sbin
mkdir -p /proc /sys /dev /tmp /out
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=512m tmpfs /tmp

die() {
        echo "vm-init: $*"
        sync
        poweroff -f
}

for m in virtio_pci 9pnet_virtio 9p; do
        modprobe "$m" || die "modprobe $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /out || die "cannot mount the result directory"
# vicodec's multiplanar=1 makes all three nodes use the _MPLANE buffer types, as our backends do.
modprobe vicodec multiplanar=1 2>/out/modprobe.log || die "modprobe vicodec failed: $(cat /out/modprobe.log)"

echo "vm-init: running the test"
cd /tmp
status=0
sh /opt/vv/test.sh >/out/tap 2>/out/log || status=$?
echo "$status" >/out/status
echo "vm-init: test exited with status $status"
sync
umount /out
poweroff -f
