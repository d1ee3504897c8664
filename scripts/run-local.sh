#!/usr/bin/env bash
# run-local.sh: what `make run` runs once the binaries are built. It starts the vendor
# simulators, waits until each listens, starts the gateway, and says that the gateway is ready
# only once it answers HTTP; then it waits for the gateway. Ctrl-C (SIGINT) or SIGTERM stops
# both. If the gateway exits before it answers (a broken config), or does not answer in time,
# it prints the gateway's last log lines and exits non-zero.
#
#   scripts/run-local.sh <gateway binary> <Caddyfile> <simulators command...>
#
# Environment: SITE, the gateway's host:port that must answer (localhost:8080); SIM_PORTS,
# the simulators' ports on 127.0.0.1 to wait for ("9101 9102 9103 9104"); READY_TIMEOUT,
# seconds that the gateway and the simulators each get to listen (60). The vendor secrets the
# Caddyfile reads ({env.NAME}) come from the environment as they are.
set -euo pipefail

if (($# < 3)); then
	echo 'usage: run-local.sh <gateway binary> <Caddyfile> <simulators command...>' >&2
	exit 2
fi
gateway=$1 caddyfile=$2
shift 2
sims_cmd=("$@")
site=${SITE:-localhost:8080}
sim_ports=${SIM_PORTS-9101 9102 9103 9104}
timeout=${READY_TIMEOUT:-60}
me='make run'

# listens HOST PORT: something accepts connections there.
listens() { (: </dev/tcp/"$1"/"$2") 2>/dev/null; }

# answers HOST PORT: an HTTP server answers a request there (any status).
answers() {
	(
		exec 3<>/dev/tcp/"$1"/"$2"
		printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" >&3
		IFS= read -r -t 2 line <&3
		[[ $line == HTTP/* ]]
	) 2>/dev/null
}

site_host=${site%:*} site_port=${site##*:}
for port in $sim_ports; do
	if listens 127.0.0.1 "$port"; then
		echo "$me: 127.0.0.1:$port is taken (a simulator of an earlier make run?)" >&2
		exit 1
	fi
done
if listens "$site_host" "$site_port"; then
	# Something else would answer for the gateway: refuse, rather than call it ready.
	echo "$me: $site is taken (a gateway of an earlier make run?)" >&2
	exit 1
fi

log=$(mktemp -t credgate-run.XXXXXX)
sims='' gw=''
cleanup() {
	local pid
	for pid in $gw $sims; do
		kill -INT "$pid" 2>/dev/null || true
	done
	for pid in $gw $sims; do
		wait "$pid" 2>/dev/null || true
	done
	rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# last_lines: the gateway's last log lines, for a failure.
last_lines() {
	echo "---- the gateway's last lines ($caddyfile) ----" >&2
	tail -n 15 "$log" >&2
}

"${sims_cmd[@]}" &
sims=$!
tries=$((timeout * 5))
for port in $sim_ports; do
	for ((try = 1; ; try++)); do
		listens 127.0.0.1 "$port" && break
		if ! kill -0 "$sims" 2>/dev/null; then
			echo "$me: the simulators exited" >&2
			exit 1
		fi
		if ((try >= tries)); then
			echo "$me: no simulator answers on 127.0.0.1:$port after ${timeout}s" >&2
			exit 1
		fi
		sleep 0.2
	done
done

# On a terminal the gateway writes to it (Caddy then logs in its readable console format), and
# a failure is the last thing it shows. Elsewhere (CI, a test) its output goes on as it comes
# and to $log, whose last lines a failure repeats; tee outlives a Ctrl-C.
if [[ -t 2 ]]; then
	"$gateway" run --config "$caddyfile" --adapter caddyfile &
	last_lines() { echo "$me: the gateway's log above says why" >&2; }
else
	"$gateway" run --config "$caddyfile" --adapter caddyfile > >(trap '' INT TERM; exec tee -a "$log") 2>&1 &
fi
gw=$!
for ((try = 1; ; try++)); do
	answers "$site_host" "$site_port" && break
	if ! kill -0 "$gw" 2>/dev/null; then
		status=0
		wait "$gw" || status=$?
		gw=''
		sleep 0.2 # tee's last lines
		echo "$me: the gateway exited (status $status) before it answered on http://$site" >&2
		last_lines
		exit 1
	fi
	if ((try >= tries)); then
		echo "$me: the gateway did not answer on http://$site after ${timeout}s" >&2
		last_lines
		exit 1
	fi
	sleep 0.2
done
echo "==> credgate is ready on http://$site${sim_ports:+ (simulators on 127.0.0.1:${sim_ports// /, :})}, e.g.:"
echo "    curl http://$site/credentials/12345/status"

status=0
wait "$gw" || status=$?
gw=''
exit "$status"
