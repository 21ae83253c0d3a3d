#!/bin/sh
# The V4L2 backends on vicodec through the whole vhost-user path, run in the guest by run-vm-test.sh:
# v4l2-ctl makes the references on the same nodes (generated frames, their direct FWHT encode, its
# direct decode), then guest-test-vicodec runs our worker on the nodes and plays QEMU and the guest
# driver against it, once with zero copy (USERPTR on guest memory) and once with --force-copy (MMAP
# buffers and a copy). See guest-test-vicodec.c for the cases.
. /opt/vv/guest-lib.sh

enc=$(node_by_name stateful-encoder) && ok "stateful encoder found ($enc)" || not_ok "stateful encoder found"
dec=$(node_by_name stateful-decoder) && ok "stateful decoder found ($dec)" || not_ok "stateful decoder found"
if [ -z "$enc" ] || [ -z "$dec" ]; then
        tap_done
        exit 1
fi

for size in 640x480 1280x720; do
        w=${size%x*}
        h=${size#*x}
        check "$size: reference frames" vm-frametool generate "$w" "$h" 10 "in-$size.yuv"
        check "$size: reference encode (v4l2-ctl)" encode "$enc" "$w" "$h" "in-$size.yuv" "enc-$size.fwht" mmap
        check "$size: reference stream is 10 frames" vm-frametool fwht-check "enc-$size.fwht" "$w" "$h" 10
        check "$size: reference decode (v4l2-ctl)" decode "$dec" FWHT "enc-$size.fwht" "dec-$size.yuv" mmap
        check "$size: reference decode is 10 frames" size_is "dec-$size.yuv" $((w * h * 3 / 2 * 10))
done

# The worker's V4L2 backends are a module, copied next to it (run-vm-test.sh --bin).
export VIRTIO_VIDEO_BACKEND_DIR=/opt/vv/bin
for mode in zero-copy force-copy; do
        flag=
        [ "$mode" = force-copy ] && flag=--force-copy
        status=0
        guest-test-vicodec --worker /opt/vv/bin/vhost-user-video --decoder "$dec" --encoder "$enc" \
                --data /tmp --worker-log "worker-$mode.log" $flag >"tap-$mode.txt" || status=$?
        echo "guest-test-vicodec $flag exited with status $status" >&2
        tap_merge "tap-$mode.txt"
        echo "--- worker log ($mode) ---" >&2
        cat "worker-$mode.log" >&2
done
# The backend logs which memory path it chose for each queue (service/backend/v4l2/v4l2.c).
check "without --force-copy the backend uses USERPTR" grep -q 'USERPTR (zero copy)' worker-zero-copy.log
check "with --force-copy the backend uses MMAP and a copy" grep -q 'MMAP buffers and a copy' worker-force-copy.log
check "with --force-copy the backend never uses USERPTR" fails grep -q 'USERPTR' worker-force-copy.log

tap_done
