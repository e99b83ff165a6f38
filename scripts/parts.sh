# Sourced by the GPU scripts: `part NAME SECONDS COMMAND...` runs one part under a time limit, its
# output appended to $log and its start, end and exit status to $out/steps.txt. Output goes to a
# file, not a pipe, so that a child left behind by a killed command cannot hold the script up.
part() {
    local name=$1 limit=$2
    shift 2
    echo "$(date +%T) start $name (limit $limit s)" >> "$out/steps.txt"
    echo "== $name" >> "$log"
    timeout -k 10 "$limit" "$@" >> "$log" 2>&1
    local rc=$?
    echo "$(date +%T) end $name: exit $rc$([ $rc = 124 ] && echo ' (time limit)')" >> "$out/steps.txt"
}
