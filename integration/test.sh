#!/usr/bin/env bash
# giftlock's whole test suite: unit tests, property tests, and the
# integration tests that run real clients (python imaplib, mbsync) through
# `giftlock serve` in front of a real, throwaway Dovecot on loopback.
#
#   integration/test.sh [extra cargo test arguments]
#
# Needs: cargo, and the Debian packages dovecot-imapd, isync (mbsync),
# openssl, python3, curl, systemd (for systemd-analyze; `.ci/run` installs
# them on a fresh machine).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
[[ -x /usr/sbin/dovecot ]] || missing+=(dovecot-imapd)
command -v mbsync >/dev/null || missing+=(isync)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if ((${#missing[@]})); then
	echo "test.sh: missing ${missing[*]}; install with: apt-get install -y ${missing[*]}" >&2
	exit 1
fi
command -v cargo >/dev/null || {
	echo "test.sh: cargo is needed (https://rustup.rs)" >&2
	exit 1
}

cd "$root"
# imapflow, the BINARY-using client of tests/mask_clients.rs, pinned by its
# package-lock.json.
if [[ ! -d integration/clients/imapflow/node_modules ]]; then
	command -v npm >/dev/null || {
		echo "test.sh: npm (Node.js >= 20) is needed for the imapflow test" >&2
		exit 1
	}
	npm ci --prefix integration/clients/imapflow --no-audit --no-fund
fi
exec cargo test --all-targets "$@"
