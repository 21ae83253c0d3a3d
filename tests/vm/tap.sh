# TAP helpers for the guest scripts (sourced from /opt/vv/tap.sh).
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
