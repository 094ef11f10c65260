# shellcheck shell=bash
# lib.sh - helpers shared by the test bed scripts (source it, do not run it).
#
#   tb_log MSG...                 timestamped line on stderr, tagged with the script name
#   tb_die MSG...                 tb_log + exit 1 (prints the tails of TB_LOGS first)
#   tb_free_port                  a TCP port nobody listens on (or recently picked) on 127.0.0.1
#   tb_spawn DIR NAME CMD...      run CMD detached, stdout+stderr in DIR/NAME.log, pid in DIR/NAME.pid
#   tb_wait SECS WHAT DIR NAME CMD...
#                                 poll CMD until it succeeds; fail early when NAME's pid is gone
#   tb_stop DIR NAME [SECS]       SIGTERM the pid in DIR/NAME.pid (only if its command line
#                                 still mentions DIR), SIGKILL after SECS (default 15)
#   tb_random_key LEN             LEN upper-case hex characters
#   tb_use_dir DIR                create DIR if needed, refuse it when a daemon of ours runs there
#
# Nothing here ever selects a process by name: only by the pid file we wrote.

TB_ME=${TB_ME:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}
TB_LOGS=()   # log files whose tails tb_die shows

tb_log() { printf '[%s %(%H:%M:%S)T] %s\n' "$TB_ME" -1 "$*" >&2; }

tb_die() {
    local f
    for f in "${TB_LOGS[@]}"; do
        [[ -s $f ]] || continue
        printf -- '--- last lines of %s ---\n' "$f" >&2
        tail -n 20 "$f" >&2
    done
    tb_log "ERROR: $*"
    exit 1
}

# Ports are drawn below the kernel's ephemeral range, so an outgoing connection
# cannot grab one between our pick and the daemon's bind. Picks are noted for
# two minutes in a shared file, so scripts running side by side never get the same one.
TB_PORT_BOOK=${TB_PORT_BOOK:-${TMPDIR:-/tmp}/deis-backup-testbed-ports}

tb_free_port() {
    local now port tries=0 low=20000 high
    read -r high _ </proc/sys/net/ipv4/ip_local_port_range
    ((high > low + 1000)) || high=65000
    (
        flock 8
        now=$(date +%s)
        # keep only recent bookings
        if [[ -f $TB_PORT_BOOK ]]; then
            awk -v now="$now" 'now - $2 < 120' "$TB_PORT_BOOK" >"$TB_PORT_BOOK.new" || true
            mv -f "$TB_PORT_BOOK.new" "$TB_PORT_BOOK"
        fi
        while ((tries++ < 500)); do
            port=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
            grep -q "^$port " "$TB_PORT_BOOK" 2>/dev/null && continue
            [[ -z $(ss -Hltn "sport = :$port") ]] || continue
            echo "$port $now" >>"$TB_PORT_BOOK"
            echo "$port"
            exit 0
        done
        exit 1
    ) 8>>"$TB_PORT_BOOK.lock" || tb_die "no free TCP port found between $low and $high"
}

tb_spawn() {
    local dir=$1 name=$2
    shift 2
    TB_LOGS+=("$dir/$name.log")
    setsid "$@" </dev/null >>"$dir/$name.log" 2>&1 &
    echo $! >"$dir/$name.pid"
    tb_log "started $name (pid $!), log $dir/$name.log"
}

# tb_alive DIR NAME: the pid in DIR/NAME.pid runs and its command line mentions DIR
# (guards against a recycled pid; a zombie has an empty command line and counts as gone).
tb_alive() {
    local pid
    pid=$(cat "$1/$2.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$1"
}

tb_wait() {
    local secs=$1 what=$2 dir=$3 name=$4
    shift 4
    local start=$SECONDS
    until "$@" >/dev/null 2>&1; do
        # a process in the middle of its exec can show an empty command line: look twice
        tb_alive "$dir" "$name" || { sleep 0.2 && tb_alive "$dir" "$name"; } ||
            tb_die "$name exited while waiting for $what"
        ((SECONDS - start < secs)) || tb_die "$what not ready after ${secs}s"
        sleep 0.2
    done
    tb_log "$what ready after $((SECONDS - start))s"
}

tb_stop() {
    local dir=$1 name=$2 secs=${3:-15} pid i
    tb_alive "$dir" "$name" || { rm -f "$dir/$name.pid"; return 0; }
    pid=$(<"$dir/$name.pid")
    tb_log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        tb_alive "$dir" "$name" || break
        sleep 0.1
    done
    if tb_alive "$dir" "$name"; then
        tb_log "$name ignored SIGTERM for ${secs}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            tb_alive "$dir" "$name" || break
            sleep 0.1
        done
        tb_alive "$dir" "$name" && { tb_log "$name (pid $pid) survived SIGKILL"; return 1; }
    fi
    rm -f "$dir/$name.pid"
}

tb_random_key() {
    local key=""
    while ((${#key} < $1)); do key+=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'); done
    key=${key^^}
    echo "${key:0:$1}"
}

tb_use_dir() {
    local dir f
    mkdir -p "$1"
    dir=$(cd "$1" && pwd -P)
    for f in "$dir"/*.pid; do
        [[ -e $f ]] || continue
        tb_alive "$dir" "$(basename "$f" .pid)" && tb_die "$dir is in use by $(basename "$f" .pid); run the matching *-down.sh first"
    done
    echo "$dir"
}
