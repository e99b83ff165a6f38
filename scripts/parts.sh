# Sourced by the GPU scripts: `part NAME SECONDS COMMAND...` runs one part under a time limit, its
# output appended to $log and its start, end and exit status to $out/steps.txt. Output goes to a
# file, not a pipe, so that a child left behind by a killed command cannot hold the script up.
# With DEADLINE set (seconds since the epoch), no part runs past it: its limit is cut to what is
# left, and a part with under 10 s left is skipped. So the whole call ends inside the device
# tool's limit, and its files come back (a call that overruns returns none).
part() {
    local name=$1 limit=$2
    shift 2
    if [ -n "${DEADLINE:-}" ]; then
        local left=$((DEADLINE - $(date +%s)))
        if [ "$left" -lt 10 ]; then
            echo "$(date +%T) skip $name: ${left} s left before the deadline" >> "$out/steps.txt"
            return
        fi
        [ "$left" -lt "$limit" ] && limit=$left
    fi
    echo "$(date +%T) start $name (limit $limit s)" >> "$out/steps.txt"
    echo "== $name" >> "$log"
    timeout -k 10 "$limit" "$@" >> "$log" 2>&1
    local rc=$?
    echo "$(date +%T) end $name: exit $rc$([ $rc = 124 ] && echo ' (time limit)')" >> "$out/steps.txt"
}
