#!/usr/bin/env bash
# A throwaway Dovecot for giftlock's tests, benchmark and demo.
#
# Everything lives under one directory DIR: config, runtime sockets, state,
# log, mailboxes and a throwaway CA. Nothing of the system's Dovecot config
# is read, and nothing outside DIR is written.
#
# Usage:
#   integration/dovecot.sh start DIR   start (or, if already running, just re-print DIR/env)
#   integration/dovecot.sh stop DIR    stop it (no-op if not running)
#   integration/dovecot.sh fill DIR USER COUNT SEED [BIG_MB]
#                                      deliver COUNT generated messages (gen-mail.py)
#   integration/dovecot.sh add DIR USER FILE...
#                                      deliver existing messages (.eml files) as-is
#
# Environment for `start` (all optional):
#   IMAP_PORT    plain/STARTTLS port (default: a free port)
#   IMAPS_PORT   implicit-TLS port   (default: a free port)
#   DOVECOT_CERT trusted (default) | untrusted: serve a leaf signed by a second
#                CA that no test trusts (DIR/untrusted-ca.pem), for the
#                "upstream certificate not trusted" test
#   DOVECOT_TLS  on (default) | off: ssl = no, so the plain port offers no
#                STARTTLS and there is no implicit-TLS port, for the
#                "imap:// upstream without STARTTLS" test
#   DOVECOT_SEPARATOR  the inbox namespace's hierarchy separator (default:
#                Dovecot's, `.` for Maildir++); `/` for the tests of a server
#                whose separator is `/`
#   LMTP_PORT    LMTP delivery port (default: a free port), for
#                integration/postfix.sh
#   AUTH_PORT    Dovecot auth service port (default: a free port), for
#                Postfix's SASL (smtpd_sasl_type = dovecot)
#   DOVECOT_OAUTH2_INTROSPECT  an RFC 7662 introspection URL: adds the
#                XOAUTH2 and OAUTHBEARER mechanisms with an oauth2 passdb
#                that asks it (integration/oauth-server.py), for the OAuth2
#                tests; the user is the token's `username`
#
# Test users (passwords are plain, for tests only):
#   alice / alice-upstream-pw
#   bob   / bob-upstream-pw
#
# After `start`, DIR/env holds shell-sourceable lines:
#   IMAP_PORT, IMAPS_PORT (empty when DOVECOT_TLS=off), LMTP_PORT, AUTH_PORT,
#   CA_FILE (the trusted
#   test CA), UNTRUSTED_CA_FILE, CERT_FILE, KEY_FILE (a localhost leaf signed
#   by CA_FILE, usable for giftlock's own listener), LOG_FILE, MAIL_ROOT,
#   MAIL_UID, MAIL_GID, DOVECOT_CONF.
#
# It runs as root (CI, this machine): the Dovecot services run as the Debian
# package's `dovecot`/`dovenull` users and mail as `nobody`. As a normal user
# every service runs as that user.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
	echo "dovecot.sh: $*" >&2
	exit 1
}

# shellcheck source=daemon-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-lib.sh"

master_pid() {
	local dir="$1" pid
	[[ -f "$dir/run/master.pid" ]] || return 1
	pid="$(cat "$dir/run/master.pid")"
	running "$pid" || return 1
	echo "$pid"
}

# Mail runs as `nobody` when we are root (Dovecot refuses mail access as
# uid 0) and as ourselves otherwise.
mail_ids() {
	if [[ "$(id -u)" == 0 ]]; then
		local gid
		gid="$(getent group nogroup | cut -d: -f3 || true)"
		echo "$(id -u nobody) ${gid:-$(id -g nobody)}"
	else
		echo "$(id -u) $(id -g)"
	fi
}

# A CA (CA:TRUE) and a leaf (CA:FALSE, SAN localhost + 127.0.0.1) signed by it.
# rustls refuses a CA certificate used as a server certificate, so the two are
# distinct. EC keys: generation takes milliseconds.
make_ca_and_leaf() {
	local dir="$1" name="$2" cn="$3"
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$dir/$name-ca.key" -out "$dir/$name-ca.pem" -days 3650 \
		-subj "/CN=$cn" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$dir/$name-server.key" -out "$dir/$name-server.csr" \
		-subj "/CN=localhost" 2>/dev/null
	cat >"$dir/$name-leaf.ext" <<-EOF
		basicConstraints=critical,CA:FALSE
		keyUsage=critical,digitalSignature,keyEncipherment
		extendedKeyUsage=serverAuth
		subjectAltName=DNS:localhost,IP:127.0.0.1
	EOF
	openssl x509 -req -in "$dir/$name-server.csr" -CA "$dir/$name-ca.pem" \
		-CAkey "$dir/$name-ca.key" -CAcreateserial -days 3650 \
		-extfile "$dir/$name-leaf.ext" -out "$dir/$name-server.pem" 2>/dev/null
	rm -f "$dir/$name-server.csr" "$dir/$name-leaf.ext" "$dir/$name-ca.srl"
}

# Dovecot's auth and mail processes run unprivileged and open files under DIR,
# so every parent of DIR must be searchable by others (a mktemp -d parent is
# 0700: chmod it 0755 first).
check_reachable() {
	local dir="$1" uid="$2" gid="$3"
	[[ "$(id -u)" == 0 ]] || return 0
	setpriv --reuid "$uid" --regid "$gid" --clear-groups test -x "$dir" ||
		die "$dir is not reachable by uid $uid (Dovecot's mail user): make its parent directories searchable (chmod o+x)"
}

make_certs() {
	local tls="$1"
	[[ -f "$tls/trusted-server.pem" ]] || make_ca_and_leaf "$tls" trusted "giftlock test CA"
	[[ -f "$tls/untrusted-server.pem" ]] || make_ca_and_leaf "$tls" untrusted "giftlock untrusted test CA"
	chmod 0644 "$tls"/*.pem
	chmod 0600 "$tls"/*.key
}

write_users() {
	local dir="$1" uid="$2" gid="$3" user
	: >"$dir/users"
	for user in alice:alice-upstream-pw bob:bob-upstream-pw; do
		local name="${user%%:*}" pw="${user#*:}"
		echo "$name:{PLAIN}$pw:$uid:$gid::$dir/mail/$name::" >>"$dir/users"
		mkdir -p "$dir/mail/$name/Maildir"/{cur,new,tmp}
	done
	chown -R "$uid:$gid" "$dir/mail"
	# The auth process (an unprivileged user) reads this file.
	chmod 0644 "$dir/users"
}

write_conf() {
	local dir="$1" imap_port="$2" imaps_port="$3" tls_on="$4" cert="$5" lmtp_port="$6" auth_port="$7"
	local conf="$dir/dovecot.conf" separator_line=""
	[[ -n "${DOVECOT_SEPARATOR:-}" ]] && separator_line="separator = $DOVECOT_SEPARATOR"
	{
		cat <<-EOF
			# Generated by integration/dovecot.sh; throwaway, tests only.
			base_dir = $dir/run
			state_dir = $dir/state
			instance_name = giftlock-test-$(basename "$dir")
			log_path = $dir/dovecot.log
			info_log_path = $dir/dovecot.log
			protocols = imap lmtp
			listen = 127.0.0.1
			mail_location = maildir:~/Maildir
			# A special-use Trash (RFC 6154), for quarantine's Trash removal.
			namespace inbox {
			  inbox = yes
			  $separator_line
			  mailbox Trash {
			    special_use = \\Trash
			  }
			}
			first_valid_uid = 1
			# Plain LOGIN on the plain port: the tests compare direct and proxied
			# sessions on both the plain and the TLS paths.
			disable_plaintext_auth = no
			passdb {
			  driver = passwd-file
			  mechanisms = plain login
			  args = scheme=PLAIN $dir/users
			}
			userdb {
			  driver = passwd-file
			  args = $dir/users
			}
			# COMPRESS=DEFLATE on: giftlock must refuse it itself, not rely on
			# the server lacking it.
			mail_plugins = \$mail_plugins zlib
			# Room for the stress tests: hundreds of sessions of one user from
			# one address (imaptest's clients, giftlock's idle sessions).
			protocol imap {
			  mail_plugins = \$mail_plugins imap_zlib
			  mail_max_userip_connections = 1000
			}
			service imap {
			  process_limit = 1000
			}
			service imap-login {
			  # Each TLS connection keeps its login process as its TLS proxy.
			  process_limit = 1000
			  inet_listener imap {
			    address = 127.0.0.1
			    port = $imap_port
			  }
			  inet_listener imaps {
			    address = 127.0.0.1
			    port = ${imaps_port:-0}
			  }
			}
			# Delivery from integration/postfix.sh: recipients are user@example.test.
			service lmtp {
			  inet_listener lmtp {
			    address = 127.0.0.1
			    port = $lmtp_port
			  }
			}
			protocol lmtp {
			  auth_username_format = %Ln
			}
			# Postfix's SASL (smtpd_sasl_type = dovecot) asks here.
			service auth {
			  inet_listener {
			    address = 127.0.0.1
			    port = $auth_port
			  }
			}
			# No stats/doveadm TCP listeners; unix sockets live under base_dir.
			service stats {
			  unix_listener stats-reader {
			    mode = 0600
			  }
			  unix_listener stats-writer {
			    mode = 0660
			  }
			}
		EOF
		if [[ -n "${DOVECOT_OAUTH2_INTROSPECT:-}" ]]; then
			cat <<-EOF
				auth_mechanisms = plain login xoauth2 oauthbearer
				passdb {
				  driver = oauth2
				  mechanisms = xoauth2 oauthbearer
				  args = $dir/dovecot-oauth2.conf.ext
				}
			EOF
			cat >"$dir/dovecot-oauth2.conf.ext" <<-EOF
				introspection_mode = post
				introspection_url = $DOVECOT_OAUTH2_INTROSPECT
				force_introspection = yes
				username_attribute = username
				active_attribute = active
				active_value = true
			EOF
			chmod 0644 "$dir/dovecot-oauth2.conf.ext"
		else
			echo "auth_mechanisms = plain login"
		fi
		if [[ "$tls_on" == on ]]; then
			cat <<-EOF
				ssl = yes
				ssl_cert = <$dir/tls/$cert-server.pem
				ssl_key = <$dir/tls/$cert-server.key
				ssl_min_protocol = TLSv1.2
			EOF
		else
			echo "ssl = no"
		fi
		if [[ "$(id -u)" == 0 ]]; then
			cat <<-EOF
				default_internal_user = dovecot
				default_login_user = dovenull
			EOF
		else
			local me group
			me="$(id -un)"
			group="$(id -gn)"
			cat <<-EOF
				default_internal_user = $me
				default_internal_group = $group
				default_login_user = $me
				service anvil {
				  chroot =
				}
				service imap-login {
				  chroot =
				}
			EOF
		fi
	} >"$conf"
}

cmd_start() {
	local dir="$1"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if master_pid "$dir" >/dev/null; then
		cat "$dir/env"
		return 0
	fi
	local tls_on="${DOVECOT_TLS:-on}" cert="${DOVECOT_CERT:-trusted}"
	[[ "$tls_on" == on || "$tls_on" == off ]] || die "DOVECOT_TLS must be on or off, not '$tls_on'"
	[[ "$cert" == trusted || "$cert" == untrusted ]] || die "DOVECOT_CERT must be trusted or untrusted, not '$cert'"
	local imap_port="${IMAP_PORT:-$(free_port)}" imaps_port=""
	local lmtp_port="${LMTP_PORT:-$(free_port)}" auth_port="${AUTH_PORT:-$(free_port)}"
	if [[ "$tls_on" == on ]]; then
		imaps_port="${IMAPS_PORT:-$(free_port)}"
	fi
	local uid gid
	read -r uid gid < <(mail_ids)

	# Unprivileged Dovecot services (auth, mail) must reach files under DIR.
	chmod 0755 "$dir"
	check_reachable "$dir" "$uid" "$gid"
	mkdir -p "$dir/run" "$dir/state" "$dir/tls"
	make_certs "$dir/tls"
	[[ -f "$dir/users" ]] || write_users "$dir" "$uid" "$gid"
	write_conf "$dir" "$imap_port" "$imaps_port" "$tls_on" "$cert" "$lmtp_port" "$auth_port"

	cat >"$dir/env" <<-EOF
		IMAP_PORT=$imap_port
		IMAPS_PORT=$imaps_port
		LMTP_PORT=$lmtp_port
		AUTH_PORT=$auth_port
		CA_FILE=$dir/tls/trusted-ca.pem
		UNTRUSTED_CA_FILE=$dir/tls/untrusted-ca.pem
		CERT_FILE=$dir/tls/trusted-server.pem
		KEY_FILE=$dir/tls/trusted-server.key
		LOG_FILE=$dir/dovecot.log
		MAIL_ROOT=$dir/mail
		MAIL_UID=$uid
		MAIL_GID=$gid
		DOVECOT_CONF=$dir/dovecot.conf
	EOF

	# The daemon must not inherit our stdout/stderr: a caller reading them
	# through a pipe would wait for an EOF that never comes.
	/usr/sbin/dovecot -c "$dir/dovecot.conf" </dev/null >"$dir/start.log" 2>&1 ||
		die "dovecot failed to start: $(cat "$dir/start.log"); see $dir/dovecot.log"
	wait_listening "$dir" "$imap_port" "$imaps_port" "$lmtp_port" "$auth_port"
	cat "$dir/env"
}

# Bounded wait (5 s) until every port accepts a TCP connection.
wait_listening() {
	local dir="$1"
	shift
	python3 - "$@" <<-'EOF' || die "dovecot did not listen within 5 s; see $dir/dovecot.log"
		import socket, sys, time
		deadline = time.monotonic() + 5
		for port in [p for p in sys.argv[1:] if p]:
		    while True:
		        try:
		            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
		            break
		        except OSError:
		            if time.monotonic() > deadline:
		                sys.exit(1)
		            time.sleep(0.02)
	EOF
}

cmd_stop() {
	local dir="$1" pid i
	[[ -d "$dir" ]] || return 0
	pid="$(master_pid "$dir")" || return 0
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		running "$pid" || return 0
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
}

maildir_of() {
	local dir="$1" user="$2"
	[[ -d "$dir/mail/$user/Maildir" ]] || die "no such test user '$user' under $dir (start it first)"
	echo "$dir/mail/$user/Maildir"
}

mail_owner() {
	local dir="$1"
	# shellcheck disable=SC1091
	(source "$dir/env" && echo "$MAIL_UID:$MAIL_GID")
}

cmd_fill() {
	local dir="$1" user="$2" count="$3" seed="$4" big_mb="${5:-6}" coded_every="${6:-0}" maildir
	maildir="$(maildir_of "$dir" "$user")"
	python3 "$here/gen-mail.py" --count "$count" --seed "$seed" --big-mb "$big_mb" \
		--coded-every "$coded_every" --out "$maildir" --format maildir --owner "$(mail_owner "$dir")"
}

cmd_add() {
	local dir="$1" user="$2" maildir owner f n=0
	shift 2
	maildir="$(maildir_of "$dir" "$user")"
	owner="$(mail_owner "$dir")"
	for f in "$@"; do
		n=$((n + 1))
		local name
		name="$(date +%s).M${n}P$$.giftlock-add"
		cp "$f" "$maildir/tmp/$name"
		chown "$owner" "$maildir/tmp/$name"
		mv "$maildir/tmp/$name" "$maildir/new/$name"
	done
}

main() {
	[[ $# -ge 2 ]] || die "usage: $0 start|stop DIR | fill DIR USER COUNT SEED [BIG_MB] | add DIR USER FILE..."
	local cmd="$1"
	shift
	case "$cmd" in
	start) cmd_start "$1" ;;
	stop) cmd_stop "$1" ;;
	fill)
		[[ $# -ge 4 ]] || die "usage: $0 fill DIR USER COUNT SEED [BIG_MB [CODED_EVERY]]"
		cmd_fill "$@"
		;;
	add)
		[[ $# -ge 3 ]] || die "usage: $0 add DIR USER FILE..."
		cmd_add "$@"
		;;
	*) die "unknown command '$cmd'" ;;
	esac
}

main "$@"
