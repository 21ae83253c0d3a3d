#!/bin/sh
# Harness self-test, run in the guest by run-vm-test.sh: vicodec is there with its three nodes, and
# v4l2-ctl's direct FWHT encode and decode of generated frames give what they must. It checks the guest
# plumbing the vhost-user tests stand on, and records the reference behaviour they compare against:
# the encoder and the decoders are deterministic and independent of the memory type.
. /opt/vv/guest-lib.sh

enc=$(node_by_name stateful-encoder) && ok "stateful encoder found ($enc)" || not_ok "stateful encoder found"
dec=$(node_by_name stateful-decoder) && ok "stateful decoder found ($dec)" || not_ok "stateful decoder found"
sdec=$(node_by_name stateless-decoder) && ok "stateless decoder found ($sdec)" ||
        not_ok "stateless decoder found"
if [ -z "$enc" ] || [ -z "$dec" ] || [ -z "$sdec" ]; then
        ls -l /sys/class/video4linux/ >&2
        tap_done
        exit 1
fi
check "encoder is a multiplanar mem2mem device" is_m2m_mplane "$enc"
check "decoder is a multiplanar mem2mem device" is_m2m_mplane "$dec"

# FWHT at vicodec's default QP 20 keeps these frames at about 48 dB; the same frames shifted by one
# are under 20 dB. 35 dB is between.
# vicodec takes 640x360 to 4096x2160.
frames=10
for size in 640x480 1280x720; do
        w=${size%x*}
        h=${size#*x}
        fb=$((w * h * 3 / 2))
        check "$size: generate $frames frames" vm-frametool generate "$w" "$h" "$frames" "in-$size.yuv"
        check "$size: encode (MMAP)" encode "$enc" "$w" "$h" "in-$size.yuv" "enc-$size.fwht" mmap
        check "$size: the stream holds $frames FWHT frames of $size" \
                vm-frametool fwht-check "enc-$size.fwht" "$w" "$h" "$frames"
        check "$size: encode (USERPTR)" encode "$enc" "$w" "$h" "in-$size.yuv" "enc-user-$size.fwht" user
        check "$size: USERPTR encode equals MMAP encode" cmp "enc-$size.fwht" "enc-user-$size.fwht"
        check "$size: decode (MMAP)" decode "$dec" FWHT "enc-$size.fwht" "dec-$size.yuv" mmap
        check "$size: $frames decoded frames" size_is "dec-$size.yuv" $((frames * fb))
        check "$size: decode(encode(x)) is close to x" \
                vm-frametool compare "$w" "$h" "in-$size.yuv" "dec-$size.yuv" 35
        check "$size: decode (USERPTR)" decode "$dec" FWHT "enc-$size.fwht" "dec-user-$size.yuv" user
        check "$size: USERPTR decode equals MMAP decode" cmp "dec-$size.yuv" "dec-user-$size.yuv"
        check "$size: stateless decode" decode "$sdec" SFWH "enc-$size.fwht" "sdec-$size.yuv" mmap
        check "$size: stateless decode equals stateful decode" cmp "dec-$size.yuv" "sdec-$size.yuv"
done

# The comparison must be able to fail: the same frames one frame late are far from x.
check "generate $((frames + 1)) frames" vm-frametool generate 640 480 $((frames + 1)) in-11.yuv
check "drop the first frame" dd if=in-11.yuv of=shifted.yuv bs=$((640 * 480 * 3 / 2)) skip=1
check "a frame shift fails the comparison" fails vm-frametool compare 640 480 shifted.yuv dec-640x480.yuv 35
check "a size mismatch fails the comparison" fails vm-frametool compare 640 480 in-640x480.yuv dec-1280x720.yuv 35

tap_done
