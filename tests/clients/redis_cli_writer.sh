#!/bin/sh
# A redis-cli writer as shell scripts write it: ask a sentinel for the master
# (get-master-addr-by-name read line by line, host then port, as the bitnami
# chart's scripts do), then RPUSH a new value there with redis-cli; again
# until <out>/stop exists or 240 s passed. Driven by
# tests/it/clients_failover.rs, which judges the log (same line format as the
# other writers in this directory):
#   START redis-cli <version>
#   V <host>:<port>   the sentinel's answer, when it changes
#   W <seq> <port>    RPUSH <key> <seq> acknowledged (an integer reply) by <port>
#   E <output>        an unexpected reply, when it differs from the previous one
#   END writes=<n>
# usage: redis_cli_writer.sh <sentinel-port> <master-name> <key> --out <dir>
set -u
sentinel=$1
name=$2
key=$3
[ "$4" = --out ] || { echo "usage: $0 <sentinel-port> <master-name> <key> --out <dir>" >&2; exit 2; }
log=$5/log
stop=$5/stop
end=$(($(date +%s) + 240))
echo "START redis-cli $(redis-cli --version | cut -d' ' -f2)" >>"$log"
n=0
writes=0
view=
last=
while [ ! -e "$stop" ]; do
  if [ "$(date +%s)" -gt "$end" ]; then
    echo "END deadline writes=$writes" >>"$log"
    exit 3
  fi
  n=$((n + 1))
  addr=$(redis-cli -h 127.0.0.1 -p "$sentinel" sentinel get-master-addr-by-name "$name" 2>&1 |
    { read -r host; read -r port; echo "$host $port"; })
  # shellcheck disable=SC2086
  set -- $addr
  if [ $# -ne 2 ]; then
    out="sentinel: $addr"
  else
    if [ "$1:$2" != "$view" ]; then
      view="$1:$2"
      echo "V $view" >>"$log"
    fi
    out=$(redis-cli -h "$1" -p "$2" rpush "$key" "$n" 2>&1)
    case $out in
      '' | *[!0-9]*) ;;
      *)
        echo "W $n $2" >>"$log"
        writes=$((writes + 1))
        sleep 0.01
        continue
        ;;
    esac
  fi
  if [ "$out" != "$last" ]; then
    last=$out
    echo "E $out" | tr '\n' ' ' >>"$log"
    echo >>"$log"
  fi
  sleep 0.05
done
echo "END writes=$writes" >>"$log"
