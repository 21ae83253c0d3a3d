#!/bin/sh
# Renders a man page the way a user would (man -l) and fails on any warning groff or man prints.
set -eu
page=$1
out=$(MANWIDTH=80 LC_ALL=C.UTF-8 MANROFFOPT=-ww man --warnings=all -l "$page" 2>&1 >/dev/null) || {
        echo "man -l $page failed: $out" >&2
        exit 1
}
if [ -n "$out" ]; then
        echo "man -l $page printed warnings:" >&2
        echo "$out" >&2
        exit 1
fi
# The page must have its NAME section rendered.
MANWIDTH=80 LC_ALL=C.UTF-8 man -l "$page" 2>/dev/null | grep -q '^NAME' || { echo "no NAME section in $page" >&2; exit 1; }
echo "ok $page"
