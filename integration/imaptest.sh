#!/usr/bin/env bash
# Builds Dovecot's imaptest from the source archive in ../shared/tools/imaptest
# (see its README) and caches the build under target/imaptest/, keyed by the
# hash of the archive and of the patch: a new archive builds again, the same
# one is built once per checkout. Nothing of it goes into git.
#
# Usage:
#   integration/imaptest.sh build    build if needed; prints the build
#                                    directory (BIN=DIR/src/imaptest,
#                                    TESTS=DIR/src/tests)
#
# Needs the Debian packages dovecot-dev autoconf automake libtool
# build-essential pkg-config (`.ci/run` installs them). GIFTLOCK_SHARED
# points at another shared/ directory. Concurrent callers (tests running in
# parallel) wait for one build under a lock.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${GIFTLOCK_SHARED:-$root/../shared}"
src="$shared/tools/imaptest"

die() {
	echo "imaptest.sh: $*" >&2
	exit 1
}

[[ "${1:-}" == build ]] || die "usage: imaptest.sh build"
archive="$(ls "$src"/imaptest-*.tar.gz 2>/dev/null | head -n1)"
[[ -n "$archive" ]] || die "no imaptest-*.tar.gz in $src"
patch_file="$(ls "$src"/*.patch 2>/dev/null | head -n1 || true)"
for tool in autoconf automake libtoolize make cc pkg-config; do
	command -v "$tool" >/dev/null ||
		die "$tool is missing: apt-get install -y dovecot-dev autoconf automake libtool build-essential pkg-config"
done
[[ -f /usr/lib/dovecot/dovecot-config ]] ||
	die "dovecot-dev is missing: apt-get install -y dovecot-dev"

key="$(cat "$archive" ${patch_file:+"$patch_file"} | sha256sum | cut -c1-16)"
cache="$root/target/imaptest"
dir="$cache/$key"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ ! -x "$dir/src/imaptest" ]]; then
	rm -rf "$dir" "$dir.tmp"
	mkdir -p "$dir.tmp"
	tar xzf "$archive" -C "$dir.tmp" --strip-components=1
	(
		cd "$dir.tmp"
		[[ -z "$patch_file" ]] || patch -p1 -s <"$patch_file"
		./autogen.sh
		./configure --with-dovecot=/usr/lib/dovecot LDFLAGS=-Wl,-rpath,/usr/lib/dovecot
		make -j"$(nproc)"
	) >"$cache/build-$key.log" 2>&1 || die "build failed; see $cache/build-$key.log"
	mv "$dir.tmp" "$dir"
fi
echo "$dir"
