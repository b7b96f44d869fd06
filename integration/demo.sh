#!/usr/bin/env bash
# giftlock demo: a throwaway Dovecot on loopback holding a few sample
# messages (tests/fixtures/mail plus generated ones), `giftlock serve` in front
# of it, and how to point Thunderbird or curl at giftlock. Stays in the
# foreground until Ctrl-C, then stops everything and deletes its temp dir.
#
#   integration/demo.sh           run the demo
#   integration/demo.sh --check   start it, fetch a message through giftlock
#                                 with curl, and exit (0 = it works)
#
# Environment: DEMO_STARTTLS_PORT (default 1143), DEMO_IMAPS_PORT (default 1993),
# DEMO_GIFTLOCK (a giftlock binary to use instead of building one; the test
# suite runs the demo this way).
# Needs: cargo; dovecot-imapd, openssl, python3, curl (installed with apt-get
# when missing and running as root).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
check=no
[[ "${1:-}" == "--check" ]] && check=yes

local_user=demo
local_password=demo-password
starttls_port="${DEMO_STARTTLS_PORT:-1143}"
imaps_port="${DEMO_IMAPS_PORT:-1993}"

install_prerequisites() {
	local missing=()
	[[ -x /usr/sbin/dovecot ]] || missing+=(dovecot-imapd)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v python3 >/dev/null || missing+=(python3)
	command -v curl >/dev/null || missing+=(curl)
	((${#missing[@]} == 0)) && return 0
	if [[ "$(id -u)" != 0 ]]; then
		echo "demo: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "demo: installing ${missing[*]} (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

install_prerequisites
giftlock="${DEMO_GIFTLOCK:-}"
if [[ -z "$giftlock" ]]; then
	command -v cargo >/dev/null || {
		echo "demo: cargo is needed to build giftlock (https://rustup.rs)" >&2
		exit 1
	}
	echo "demo: building giftlock (release)"
	(cd "$root" && cargo build --release --quiet --bin giftlock)
	giftlock="${CARGO_TARGET_DIR:-$root/target}/release/giftlock"
fi

work="$(mktemp -d /tmp/giftlock-demo-XXXXXX)"
chmod 0755 "$work" # Dovecot's unprivileged processes read below it
giftlock_pid=""
cleanup() {
	# Best effort, every step: errexit must not cut the cleanup short.
	set +e
	if [[ -n "$giftlock_pid" ]]; then
		kill "$giftlock_pid" 2>/dev/null
		wait "$giftlock_pid" 2>/dev/null
	fi
	"$here/dovecot.sh" stop "$work/dovecot"
	rm -rf "$work"
	echo "demo: stopped and cleaned up"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$here/dovecot.sh" start "$work/dovecot" >/dev/null
# IMAP_PORT, IMAPS_PORT, CA_FILE, LOG_FILE, MAIL_ROOT ...
# shellcheck disable=SC1091
source "$work/dovecot/env"
dovecot_imaps_port="${IMAPS_PORT:?}"
"$here/dovecot.sh" add "$work/dovecot" alice "$root"/tests/fixtures/mail/*.eml
"$here/dovecot.sh" fill "$work/dovecot" alice 20 1 0

# shellcheck disable=SC2016 # a literal $ in the pattern
hash="$(printf '%s\n' "$local_password" | "$giftlock" passwd --secret-stdin | grep -o '\$argon2[^"]*')"
cat >"$work/giftlock.toml" <<EOF
[general]
state_dir = "$work/giftlock-state"

[[listeners]]
address = "127.0.0.1:$starttls_port"
tls = "starttls"

[[listeners]]
address = "127.0.0.1:$imaps_port"
tls = "implicit"

[[accounts]]
name = "demo"
local_user = "$local_user"
local_password_hash = "$hash"

[accounts.upstream]
url = "imaps://localhost:$dovecot_imaps_port"
user = "alice"
# Not GIFTLOCK_-prefixed: that prefix overrides config keys.
secret = "env:DEMO_UPSTREAM_SECRET"
ca_file = "$CA_FILE"
EOF
ca_line="$("$giftlock" cert --config "$work/giftlock.toml" | grep '^CA certificate:')"
giftlock_ca="${ca_line#CA certificate:}"
giftlock_ca="${giftlock_ca#"${giftlock_ca%%[![:space:]]*}"}"

DEMO_UPSTREAM_SECRET=alice-upstream-pw \
	"$giftlock" serve --config "$work/giftlock.toml" >"$work/giftlock.log" 2>&1 &
giftlock_pid=$!
for _ in $(seq 1 150); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$imaps_port") 2>/dev/null; then
		break
	fi
	kill -0 "$giftlock_pid" 2>/dev/null || {
		echo "demo: giftlock did not start:" >&2
		cat "$work/giftlock.log" >&2
		exit 1
	}
	sleep 0.1
done

if [[ "$check" == yes ]]; then
	curl -sS --max-time 20 --cacert "$giftlock_ca" --user "$local_user:$local_password" \
		"imaps://localhost:$imaps_port/INBOX;UID=1" | head -5
	curl -sS --max-time 20 --cacert "$giftlock_ca" --ssl-reqd --user "$local_user:$local_password" \
		"imap://localhost:$starttls_port/INBOX?ALL"
	echo "demo: check passed"
	exit 0
fi

cat <<EOF

giftlock is running in front of a throwaway Dovecot ($(find "$MAIL_ROOT/alice/Maildir" -type f -path '*/[nc][eu][wr]/*' | wc -l) messages).

  Log in to giftlock as:  $local_user / $local_password
  IMAP over TLS:          localhost:$imaps_port (SSL/TLS)
  IMAP with STARTTLS:     localhost:$starttls_port
  giftlock's CA:          $giftlock_ca

curl:
  curl --cacert $giftlock_ca --user $local_user:$local_password 'imaps://localhost:$imaps_port/INBOX;UID=1'
  curl --cacert $giftlock_ca --user $local_user:$local_password --ssl-reqd 'imap://localhost:$starttls_port/INBOX?ALL'

Thunderbird: Account Settings > Account Actions > Add Mail Account, enter any
address and the password above, choose "Configure manually": incoming IMAP,
server localhost, port $imaps_port, SSL/TLS, normal password, username
$local_user. Accept the certificate exception (or import $giftlock_ca under
Settings > Privacy & Security > Certificates > Manage Certificates > Authorities).

giftlock's log: $work/giftlock.log   Dovecot's log: $LOG_FILE
Press Ctrl-C to stop and clean up.
EOF
wait "$giftlock_pid"
