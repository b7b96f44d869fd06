#!/usr/bin/env bash
# giftlock's whole test suite: unit tests, property tests, and the
# integration tests that run real clients (python imaplib, mbsync, smtplib,
# swaks) through `giftlock serve` in front of a real, throwaway Dovecot (and
# Postfix, and an OAuth2 authorization server) on loopback.
#
#   integration/test.sh [extra cargo test arguments]
#
# Tests that need what the repository does not hold (Dovecot and the
# clients, from Debian's packages; the shared corpus in ../shared) skip
# with a notice when it is missing (tests/needs/mod.rs), and the skips are
# listed at the end. With GL_TEST_REQUIRE_ALL=1 (`.ci/run` sets it) a
# missing need fails its test instead, and any skip fails the run. Run
# without arguments it first checks rustfmt and clippy (-D warnings).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
[[ -x /usr/sbin/dovecot ]] || missing+=(dovecot-imapd)
command -v mbsync >/dev/null || missing+=(isync)
command -v offlineimap >/dev/null || missing+=(offlineimap3)
command -v fetchmail >/dev/null || missing+=(fetchmail)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
command -v gpg >/dev/null || missing+=(gnupg)
command -v systemd-analyze >/dev/null || missing+=(systemd)
[[ -x /usr/lib/dovecot/lmtp ]] || missing+=(dovecot-lmtpd)
[[ -x /usr/lib/postfix/sbin/master ]] || missing+=(postfix)
command -v swaks >/dev/null || missing+=(swaks libnet-ssleay-perl libio-socket-ssl-perl)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
command -v gnome-keyring-daemon >/dev/null || missing+=(gnome-keyring)
command -v secret-tool >/dev/null || missing+=(libsecret-tools)
# imaptest (tests/imaptest_*.rs) is built from ../shared/tools/imaptest.
[[ -f /usr/lib/dovecot/dovecot-config ]] || missing+=(dovecot-dev)
command -v autoconf >/dev/null || missing+=(autoconf)
command -v automake >/dev/null || missing+=(automake)
command -v libtoolize >/dev/null || missing+=(libtool)
command -v make >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if ((${#missing[@]})); then
	echo "test.sh: missing ${missing[*]}: the tests that need them will be skipped" >&2
	echo "test.sh: install with: apt-get install -y ${missing[*]}" >&2
fi
[[ -d "$root/../shared/corpus" || -n "${GIFTLOCK_SHARED:-}" ]] ||
	echo "test.sh: no ../shared beside the repository: the tests that need the shared corpus will be skipped" >&2
command -v cargo >/dev/null || {
	echo "test.sh: cargo is needed (https://rustup.rs)" >&2
	exit 1
}

cd "$root"
# imapflow, the BINARY-using client of tests/mask_clients.rs, and
# playwright-core, which drives Debian's chromium in tests/web_page.rs, each
# pinned by its package-lock.json (playwright-core downloads no browser).
for client in imapflow web; do
	if [[ ! -d integration/clients/$client/node_modules ]]; then
		if command -v npm >/dev/null; then
			npm ci --prefix integration/clients/$client --no-audit --no-fund
		else
			echo "test.sh: no npm (Node.js >= 20): the $client test will be skipped" >&2
		fi
	fi
done

# The OAuth2 bench's authorization server (authlib, Flask), pinned by
# integration/oauth/requirements.txt, in a venv under target/.
venv=target/oauth-venv
if [[ ! -x "$venv/bin/flask" || integration/oauth/requirements.txt -nt "$venv/bin/flask" ]]; then
	if python3 -m venv "$venv" 2>/dev/null; then
		"$venv/bin/pip" install -q -r integration/oauth/requirements.txt ||
			echo "test.sh: cannot install integration/oauth/requirements.txt: the OAuth2 tests will be skipped" >&2
	else
		echo "test.sh: python3 -m venv failed (python3-venv): the OAuth2 tests will be skipped" >&2
	fi
fi

skips="$(mktemp)"
trap 'rm -f "$skips"' EXIT
status=0
# The whole suite (no extra arguments) also holds the code to rustfmt and
# to clippy with warnings as errors, so neither lands unnoticed.
if (($# == 0)); then
	for lint in "fmt --check" "clippy --all-targets -- -D warnings"; do
		tool="${lint%% *}"
		if cargo "$tool" --version >/dev/null 2>&1; then
			# shellcheck disable=SC2086 # the lint's words are its arguments
			cargo $lint || { echo "test.sh: cargo $lint failed" >&2; status=1; }
		else
			echo "cargo $lint: missing cargo-$tool (rustup component add ${tool/fmt/rustfmt})" >>"$skips"
		fi
	done
fi
GL_SKIP_LOG="$skips" cargo test --all-targets --no-fail-fast "$@" || status=$?
if [[ -s "$skips" ]]; then
	echo
	echo "test.sh: $(wc -l <"$skips") test(s) skipped:"
	sort "$skips" | sed 's/^/  /'
	if [[ "${GL_TEST_REQUIRE_ALL:-}" == 1 ]]; then
		echo "test.sh: GL_TEST_REQUIRE_ALL=1: no test may be skipped" >&2
		status=1
	fi
fi
exit "$status"
