#!/usr/bin/env bash
# bench/run.sh (make bench): Postern side by side with Postfix and Dovecot on this machine, in one run.
#
# Run as root on Debian. Installs postfix, dovecot-imapd, dovecot-pop3d and dovecot-lmtpd when missing; sets up a
# private Postfix (own config dir and queue, `postfix -c DIR`), a private Dovecot (`dovecot -c FILE`, own base_dir)
# and a Postern (`postern init --unprivileged`), all on loopback ports nobody else uses, with the same users and
# password; runs every workload against each, several times; stops everything; writes the medians into
# docs/benchmarks.md. The system's own Postfix and Dovecot (if any) are not touched.
#
# Environment:
#   BENCH_QUICK=1    every workload once, at a small size (to iterate); the doc is not touched unless BENCH_DOC is set
#   BENCH_RUNS=N     runs per workload (default 3)
#   BENCH_DOC=FILE   where the table goes (default docs/benchmarks.md; quick mode: the work dir)
#   BENCH_KEEP=1     keep the work directory (configs, logs, results) after the run
#   BENCH_POSTERN=F  a postern binary to measure instead of building this tree (`make build`)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
QUICK=${BENCH_QUICK:-0}
PASS=bench-password-7
# Ports: Postern 125xx, Postfix 13025, Dovecot 141xx (unprivileged, away from `make run`'s 2xxx and the tests').
PN_SMTP=12525 PN_IMAP=12143 PN_POP3=12110
PF_SMTP=13025
DC_IMAP=14143 DC_POP3=14110 DC_LMTP=14024

if [ "$QUICK" = 1 ]; then
	RUNS=${BENCH_RUNS:-1}
	SMTP_MSGS=500 IMAP_USERS=4 IMAP_FILL=50 IMAP_DURATION=5s POP3_MSGS=200 IDLE_SIZES="300"
	IDLE_SETTLE=10s NOTIFY_MSGS=20 FSYNC_N=200
else
	RUNS=${BENCH_RUNS:-3}
	SMTP_MSGS=5000 IMAP_USERS=20 IMAP_FILL=200 IMAP_DURATION=30s POP3_MSGS=1000 IDLE_SIZES="1000 10000"
	IDLE_SETTLE=130s NOTIFY_MSGS=200 FSYNC_N=1000
fi
SMTP_SESSIONS=20

log() { printf '\n== %s  %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (private Postfix and Dovecot instances need it)"

# --- peers from Debian -------------------------------------------------------------------------------------------
install_peers() {
	local missing=()
	for p in postfix dovecot-imapd dovecot-pop3d dovecot-lmtpd; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} = 0 ] && return
	log "installing ${missing[*]}"
	# No system Postfix configuration: the benchmark runs its own instance.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
}
install_peers
command -v smtp-source >/dev/null || die "smtp-source (package postfix) not found"
IMAPTEST=$(command -v imaptest || true)

# --- work dir, tools ---------------------------------------------------------------------------------------------
# Under /var/tmp (not a tmpfs on Debian): the servers' data must be on a real disk for fsync to mean anything.
W=$(mktemp -d /var/tmp/postern-bench.XXXXXX)
chmod 755 "$W"
RESULTS=$W/results.jsonl
: >"$RESULTS"
DOC=${BENCH_DOC:-}
if [ -z "$DOC" ]; then
	if [ "$QUICK" = 1 ]; then DOC=$W/benchmarks.md; cp docs/benchmarks.md "$DOC"; else DOC=$ROOT/docs/benchmarks.md; fi
fi

PN_PID= DC_CONF= PF_CONF=
cleanup() {
	set +e
	[ -n "$PN_PID" ] && kill -TERM "$PN_PID" 2>/dev/null && wait "$PN_PID" 2>/dev/null
	[ -n "$DC_CONF" ] && dovecot -c "$DC_CONF" stop 2>/dev/null
	[ -n "$PF_CONF" ] && postfix -c "$PF_CONF" stop 2>/dev/null
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "work directory kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 idle connections need that many descriptors in the client and in each server.
ulimit -n 262144 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 10100 ] || echo "bench: warning: ulimit -n is $(ulimit -n); 10,000 connections will fail" >&2

log "building postern and the bench tools"
BIN=${BENCH_POSTERN:-}
if [ -z "$BIN" ]; then make -s build; BIN=$ROOT/bin/postern; fi
go build -o "$W/bin/" ./bench/benchtool ./bench/imapload
BT=$W/bin/benchtool
IL=$W/bin/imapload

for port in $PN_SMTP $PN_IMAP $PN_POP3 $PF_SMTP $DC_IMAP $DC_POP3 $DC_LMTP; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is in use"; fi
done

wait_port() { # wait_port PORT NAME
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
		sleep 0.1
	done
	die "$2 does not listen on $1"
}

# Users: bench1..benchN (IMAP mix, idle connections), pop (POP3), notify (IDLE latency), smtp1..smtpR (one fresh
# recipient per SMTP run, so every run delivers into an empty mailbox on both sides).
USERS=()
for i in $(seq "$IMAP_USERS"); do USERS+=("bench$i@bench.test"); done
USERS+=(pop@bench.test notify@bench.test)
for r in $(seq "$RUNS"); do USERS+=("smtp$r@bench.test"); done

# --- Postern -----------------------------------------------------------------------------------------------------
setup_postern() {
	log "Postern: init, ${#USERS[@]} users"
	local d=$W/postern conf=$W/postern/postern.toml
	"$BIN" init --dir "$d" --hostname localhost --domain bench.test --unprivileged >/dev/null
	# Loopback ports of the benchmark, other services off, passwords without TLS (the peers get the same), and
	# session limits that smtp-source -d (250 messages per session) and the idle test would otherwise hit.
	sed -i -e "s/127.0.0.1:2525/127.0.0.1:$PN_SMTP/" -e "s/127.0.0.1:2143/127.0.0.1:$PN_IMAP/" \
		-e "s/127.0.0.1:2110/127.0.0.1:$PN_POP3/" \
		-e 's/^\(submission \|submissions\|imaps \|pop3s \|http \)\( *\)= \[.*\]/\1\2= []/' \
		-e 's/^allow_plaintext = false/allow_plaintext = true/' \
		-e 's/^max_commands = 1000 /max_commands = 1000000 /' \
		-e 's/^max_connections_per_ip = 20 /max_connections_per_ip = 200 /' \
		-e 's/^\(spf\|dkim_verify\|arc\|dmarc\|rules\|bayes\)\( *\)= true/\1\2= false/' "$conf"
	# The MX checks Postfix does not do by default are off (SPF, DKIM, ARC, DMARC, rules, bayes): both sides do the
	# same work. With them on, every message waits for the SPF/DMARC DNS lookups of its sender's domain, and the
	# rate measures the resolver (docs/benchmarks.md gives that number too).
	grep -q '^spf *= false' "$conf" || die "could not turn Postern's SPF check off in $conf"
	for u in "${USERS[@]}"; do echo "$PASS" | "$BIN" -c "$conf" user add "$u" --password-stdin >/dev/null; done
	"$BIN" -c "$conf" check >/dev/null
	"$BIN" -c "$conf" serve >"$d/serve.log" 2>&1 &
	PN_PID=$!
	wait_port $PN_IMAP Postern
	PN_CONF=$conf
}

# --- Dovecot -----------------------------------------------------------------------------------------------------
setup_dovecot() {
	log "Dovecot: private instance, passwd-file with ${#USERS[@]} users"
	local d=$W/dovecot hash
	mkdir -p "$d/mail" "$d/state"
	chown 65534:65534 "$d/mail"
	hash=$("$BT" hash "$PASS") # argon2id with Postern's parameters: a login costs both the same
	for u in "${USERS[@]}"; do echo "$u:{ARGON2ID}$hash"; done >"$d/passwd"
	cat >"$d/dovecot.conf" <<-EOF
		# Private benchmark instance (bench/run.sh). Defaults otherwise, including mail_fsync = optimized.
		base_dir = $d/run
		state_dir = $d/state
		instance_name = dovecot-bench
		protocols = imap pop3 lmtp
		listen = 127.0.0.1
		ssl = no
		disable_plaintext_auth = no
		auth_mechanisms = plain login
		log_path = $d/dovecot.log
		mail_location = maildir:~/Maildir
		mail_fsync = optimized
		namespace inbox {
		  inbox = yes
		}
		passdb {
		  driver = passwd-file
		  args = scheme=ARGON2ID $d/passwd
		}
		userdb {
		  driver = static
		  args = uid=65534 gid=65534 home=$d/mail/%d/%n
		}
		first_valid_uid = 1000
		default_internal_user = dovecot
		default_login_user = dovenull
		# One imap process per connection (Dovecot's default and advice); limits high enough for 10,000, and
		# client limits within the 20,000 descriptors a process may have here.
		default_process_limit = 1000
		default_client_limit = 19000
		mail_max_userip_connections = 100000
		service imap-login {
		  inet_listener imap {
		    port = $DC_IMAP
		  }
		  inet_listener imaps {
		    port = 0
		  }
		}
		service pop3-login {
		  inet_listener pop3 {
		    port = $DC_POP3
		  }
		  inet_listener pop3s {
		    port = 0
		  }
		}
		service lmtp {
		  inet_listener lmtp {
		    address = 127.0.0.1
		    port = $DC_LMTP
		  }
		}
		service imap {
		  process_limit = 12000
		}
	EOF
	DC_CONF=$d/dovecot.conf
	dovecot -c "$DC_CONF"
	wait_port $DC_IMAP Dovecot
	for _ in $(seq 100); do [ -s "$d/run/master.pid" ] && break; sleep 0.1; done
	DC_PID=$(cat "$d/run/master.pid")
}

# --- Postfix -----------------------------------------------------------------------------------------------------
setup_postfix() {
	log "Postfix: private instance (own config dir and queue)"
	local d=$W/postfix
	mkdir -p "$d/etc" "$d/spool" "$d/data" "$d/vmail"
	chown 65534:65534 "$d/vmail"
	chown postfix "$d/data"
	# Every bench.test address is a virtual mailbox (Maildir, delivered by virtual(8) as uid 65534), except
	# notify@, which goes to Dovecot over LMTP (the IDLE latency test).
	for u in "${USERS[@]}"; do echo "$u bench.test/${u%@*}/"; done >"$d/etc/vmailbox"
	cat >"$d/etc/main.cf" <<-EOF
		compatibility_level = 3.6
		myhostname = mail.bench.test
		mydomain = bench.test
		myorigin = bench.test
		mydestination =
		inet_interfaces = loopback-only
		inet_protocols = ipv4
		mynetworks = 127.0.0.0/8
		queue_directory = $d/spool
		data_directory = $d/data
		mail_owner = postfix
		setgid_group = postdrop
		maillog_file = $d/postfix.log
		maillog_file_prefixes = $d
		alias_maps =
		alias_database =
		virtual_mailbox_domains = bench.test
		virtual_mailbox_base = $d/vmail
		virtual_mailbox_maps = texthash:$d/etc/vmailbox
		virtual_uid_maps = static:65534
		virtual_gid_maps = static:65534
		transport_maps = inline:{ notify@bench.test=lmtp:inet:127.0.0.1:$DC_LMTP }
		smtpd_tls_security_level = none
		smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
		smtputf8_enable = no
		biff = no
	EOF
	cat >"$d/etc/master.cf" <<-EOF
		127.0.0.1:$PF_SMTP inet n - n - - smtpd
		pickup unix n - n 60 1 pickup
		cleanup unix n - n - 0 cleanup
		qmgr unix n - n 300 1 qmgr
		rewrite unix - - n - - trivial-rewrite
		bounce unix - - n - 0 bounce
		defer unix - - n - 0 bounce
		trace unix - - n - 0 bounce
		verify unix - - n - 1 verify
		flush unix n - n 1000? 0 flush
		proxymap unix - - n - - proxymap
		smtp unix - - n - - smtp
		relay unix - - n - - smtp
		lmtp unix - - n - - lmtp
		showq unix n - n - - showq
		error unix - - n - - error
		retry unix - - n - - error
		discard unix - - n - - discard
		virtual unix - n n - - virtual
		anvil unix - - n - 1 anvil
		scache unix - - n - 1 scache
		postlog unix-dgram n - n - 1 postlogd
	EOF
	PF_CONF=$d/etc
	postfix -c "$PF_CONF" start >/dev/null 2>&1 || { cat "$d/postfix.log" >&2; die "postfix did not start"; }
	wait_port $PF_SMTP Postfix
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
setup_postern
setup_dovecot
setup_postfix

log "filling mailboxes (the same messages by IMAP APPEND into both stores)"
for srv in "postern $PN_IMAP" "dovecot $DC_IMAP"; do
	set -- $srv
	"$BT" fill -addr "127.0.0.1:$2" -user 'bench%d@bench.test' -users "$IMAP_USERS" -pass "$PASS" -count "$IMAP_FILL"
	"$BT" fill -addr "127.0.0.1:$2" -user pop@bench.test -pass "$PASS" -count "$POP3_MSGS"
done

# --- workloads ---------------------------------------------------------------------------------------------------
COMMON=(-out "$RESULTS")
for run in $(seq "$RUNS"); do
	log "run $run of $RUNS: disk fsync ceiling"
	"$BT" fsync "${COMMON[@]}" -run "$run" -dir "$W" -n "$FSYNC_N"

	log "run $run: SMTP acceptance, smtp-source -s $SMTP_SESSIONS -l 4096 -m $SMTP_MSGS"
	"$BT" smtp "${COMMON[@]}" -server postern -run "$run" -addr "127.0.0.1:$PN_SMTP" -sessions $SMTP_SESSIONS \
		-count "$SMTP_MSGS" -to "smtp$run@bench.test" \
		-count-cmd "'$BIN' -c '$PN_CONF' mailbox list smtp$run@bench.test | awk -F'\t' '\$1==\"INBOX\"{print \$2}'"
	"$BT" smtp "${COMMON[@]}" -server postfix -run "$run" -addr "127.0.0.1:$PF_SMTP" -sessions $SMTP_SESSIONS \
		-count "$SMTP_MSGS" -to "smtp$run@bench.test" -maildir "$W/postfix/vmail/bench.test/smtp$run"

	log "run $run: IMAP mix, $IMAP_USERS clients for $IMAP_DURATION"
	"$IL" "${COMMON[@]}" -server postern -run "$run" -addr "127.0.0.1:$PN_IMAP" -users "$IMAP_USERS" \
		-clients "$IMAP_USERS" -pass "$PASS" -duration "$IMAP_DURATION"
	"$IL" "${COMMON[@]}" -server dovecot -run "$run" -addr "127.0.0.1:$DC_IMAP" -users "$IMAP_USERS" \
		-clients "$IMAP_USERS" -pass "$PASS" -duration "$IMAP_DURATION"

	log "run $run: POP3 RETR of $POP3_MSGS messages"
	"$BT" pop3 "${COMMON[@]}" -server postern -run "$run" -addr "127.0.0.1:$PN_POP3" -user pop@bench.test \
		-pass "$PASS" -count "$POP3_MSGS" -passes 5
	"$BT" pop3 "${COMMON[@]}" -server dovecot -run "$run" -addr "127.0.0.1:$DC_POP3" -user pop@bench.test \
		-pass "$PASS" -count "$POP3_MSGS" -passes 5

	log "run $run: SMTP -> IMAP IDLE latency, $NOTIFY_MSGS messages"
	"$BT" notify "${COMMON[@]}" -server postern -run "$run" -imap "127.0.0.1:$PN_IMAP" \
		-smtp "127.0.0.1:$PN_SMTP" -user notify@bench.test -pass "$PASS" -count "$NOTIFY_MSGS"
	"$BT" notify "${COMMON[@]}" -server postfix+dovecot -run "$run" -imap "127.0.0.1:$DC_IMAP" \
		-smtp "127.0.0.1:$PF_SMTP" -user notify@bench.test -pass "$PASS" -count "$NOTIFY_MSGS"

	for n in $IDLE_SIZES; do
		# 10,000 logins cost minutes (argon2id on both sides): the biggest size runs once.
		if [ "$run" -gt 1 ] && [ "$n" -ge 10000 ]; then continue; fi
		log "run $run: memory of $n idle IMAP connections"
		"$BT" idleconns "${COMMON[@]}" -server postern -run "$run" -addr "127.0.0.1:$PN_IMAP" -pid "$PN_PID" \
			-users "$IMAP_USERS" -pass "$PASS" -conns "$n" -settle "$IDLE_SETTLE"
		"$BT" idleconns "${COMMON[@]}" -server dovecot -run "$run" -addr "127.0.0.1:$DC_IMAP" -pid "$DC_PID" \
			-users "$IMAP_USERS" -pass "$PASS" -conns "$n" -settle "$IDLE_SETTLE"
		sleep 2 # let the servers tear the sessions down before the next workload
	done
done

if [ -n "$IMAPTEST" ]; then
	log "imaptest found at $IMAPTEST, but the run does not drive it yet"
fi

# --- report ------------------------------------------------------------------------------------------------------
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
FS=$(df -PT "$W" | awk 'NR==2{print $2" on "$1}')
cat >"$W/meta" <<EOF
Run: $(date -u '+%Y-%m-%d %H:%M UTC'), \`make bench\`$([ "$QUICK" = 1 ] && echo " (BENCH_QUICK=1)"), $RUNS run(s) per workload
Machine: $(nproc) CPUs ($CPU), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), data on $FS
Versions: Postern $("$BIN" version | head -1), Postfix $(postconf -c "$PF_CONF" -h mail_version), Dovecot $(dovecot --version | cut -d' ' -f1), $(go version | cut -d' ' -f3)
Load average (the machine may be shared): $LOAD_START at the start, $LOAD_END at the end
Sizes: SMTP $SMTP_MSGS msgs x 4 KiB over $SMTP_SESSIONS sessions; IMAP $IMAP_USERS clients x $IMAP_DURATION on $IMAP_FILL-message INBOXes; POP3 $POP3_MSGS msgs; idle $IDLE_SIZES conns; IDLE latency $NOTIFY_MSGS msgs
imaptest: $([ -n "$IMAPTEST" ] && echo "found, not run" || echo "not packaged in Debian $(cat /etc/debian_version) (apt-cache policy imaptest dovecot-imaptest: none); not run")
EOF
"$BT" report -results "$RESULTS" -meta "$W/meta" -doc "$DOC"
[ "$QUICK" = 1 ] || cp "$RESULTS" "$ROOT/bench/results-last.jsonl"
log "table written to $DOC; raw results in bench/results-last.jsonl"
