# Shared by the guest scripts (sourced from /opt/vv/guest-lib.sh): TAP output, and vicodec through
# v4l2-ctl.
#
# TAP:
#   check NAME CMD...   runs CMD (its output goes to stderr, the guest log) and prints one result;
#   ok NAME / not_ok NAME REASON print one result; tap_done prints the plan and fails if anything failed.
tap_n=0
tap_failed=0

ok() {
        tap_n=$((tap_n + 1))
        echo "ok $tap_n - $1"
}

not_ok() {
        tap_n=$((tap_n + 1))
        tap_failed=$((tap_failed + 1))
        echo "not ok $tap_n - $1"
        [ -n "${2:-}" ] && echo "# $2"
        echo "FAILED: $1${2:+: $2}" >&2
}

check() {
        local name=$1 status=0
        shift
        echo "+ $*" >&2
        "$@" >&2 || status=$?
        if [ "$status" -eq 0 ]; then
                ok "$name"
        else
                not_ok "$name" "'$*' exited with status $status"
        fi
}

# Succeeds when CMD fails: for checks that the comparisons can fail at all.
fails() {
        ! "$@"
}

# The plan comes last, so a guest that dies half-way leaves no plan and the harness fails the test.
tap_done() {
        echo "1..$tap_n"
        [ "$tap_failed" -eq 0 ]
}

# TAP lines of another program (FILE), renumbered into ours. A program that ended without its plan
# line counts as a failure.
tap_merge() {
        local line plan=
        while IFS= read -r line; do
                case $line in
                "ok "*) ok "${line#ok * - }" ;;
                "not ok "*"# TODO"*)
                        # An expected failure: reported as it is, and not counted.
                        tap_n=$((tap_n + 1))
                        echo "not ok $tap_n - ${line#not ok * - }"
                        ;;
                "not ok "*) not_ok "${line#not ok * - }" ;;
                1..*) plan=$line ;;
                "Bail out!"*) not_ok "$line" ;;
                esac
        done <"$1"
        [ -n "$plan" ] || not_ok "$1: no TAP plan (the program died?)"
}

# vicodec --------------------------------------------------------------------------------------------

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
