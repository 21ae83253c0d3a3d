#!/bin/sh
# Harness self-test, run in the guest by run-vm-test.sh: vicodec is there with its three nodes, and
# v4l2-ctl's direct FWHT encode and decode of generated frames give what they must. It checks the guest
# plumbing the vhost-user tests stand on, and records the reference behaviour they compare against:
# the encoder and the decoders are deterministic and independent of the memory type.
. /opt/vv/tap.sh

# /dev node of the vicodec device whose name (sysfs) is $1, or nothing.
node_by_name() {
        local n
        for n in /sys/class/video4linux/video*; do
                [ "$(cat "$n/name" 2>/dev/null)" = "$1" ] && { echo "/dev/${n##*/}"; return 0; }
        done
        return 1
}

is_m2m_mplane() {
        v4l2-ctl -d "$1" -D | grep -q 'Video Memory-to-Memory Multiplanar'
}

# encode DEVICE WIDTH HEIGHT IN OUT MEMORY: v4l2-ctl's stateful encode, MEMORY mmap or user. The
# capture side is FWHT already; setting it again would make v4l2-ctl pass its stale size along.
encode() {
        v4l2-ctl -d "$1" --set-fmt-video-out=width="$2",height="$3",pixelformat=YU12 \
                --stream-$6 --stream-out-$6 --stream-from "$4" --stream-to "$5"
}

# decode DEVICE CODED IN OUT MEMORY: v4l2-ctl's decode, to YU12 as the source change event sets it.
# CODED is FWHT for the stateful decoder, SFWH for the stateless one (v4l2-ctl then parses the stream
# and submits requests itself).
decode() {
        v4l2-ctl -d "$1" --set-fmt-video-out=pixelformat="$2" \
                --stream-$5 --stream-out-$5 --stream-from "$3" --stream-to "$4"
}

size_is() {
        local got
        got=$(wc -c <"$1")
        [ "$got" -eq "$2" ] || { echo "$1 has $got bytes, expected $2" >&2; return 1; }
}

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
