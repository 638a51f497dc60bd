#!/usr/bin/env bash
# The layers of src/, checked: prints "PASS layers: ..." or "FAIL layers:" and
# every offending line.
#   src/core  pure logic: includes only core; no I/O objects, logging or clock reads
#   src/io    sockets, files, the kernel: includes core and io
#   src/app   the command line and the composition root: includes anything
# Nothing but app includes app. Inside the core, arrows point down only: GRAPH
# names what each core module may include, and every core module must be in it.
set -u
cd "$(dirname "$0")/.."
GRAPH="addresses: | host: | route_decider: | text: | event: | version: | write_queue: | port_allocator: | session: |
  protocol: session text | sync_codec: session text | recording: session | offload_plan: session |
  session_table: event port_allocator session | controller: event protocol session_table text |
  cluster: event session_table sync_codec text | capacity: cluster event session_table sync_codec |
  serving: capacity | stats: capacity controller serving session_table sync_codec"
bad=""
add() { bad="$bad$1"$'\n'; }
graph=" $(printf '%s' "$GRAPH" | tr -s ' \n' ' ') "
for f in src/*/*.h src/*/*.cpp; do
  layer=$(basename "$(dirname "$f")")
  while IFS= read -r inc; do
    [ -z "$inc" ] && continue
    case "$layer:${inc%%/*}" in
      core:core | io:core | io:io | app:core | app:io | app:app) ;;
      *) add "$f includes $inc: $layer may not include ${inc%%/*}" ;;
    esac
  done < <(sed -n 's/^#include "\(.*\)"$/\1/p' "$f" | grep -v '^[^/]*$')
  for inc in $(sed -n 's/^#include "\([^/]*\)"$/\1/p' "$f"); do
    add "$f includes \"$inc\": name its layer (core/, io/ or app/)"
  done
done
for f in src/core/*; do
  m=$(basename "${f%.*}")
  case "$graph" in *" $m: "*|*"| $m: "*) ;; *) add "core module $m is not in GRAPH of tests/layers.sh"; continue ;; esac
  allowed=" $m $(printf '%s' "$graph" | sed "s/.*[| ]$m: \([^|]*\).*/\1/") "
  for inc in $(sed -n 's/^#include "core\/\(.*\)\.h"$/\1/p' "$f"); do
    case "$allowed" in *" $inc "*) ;; *) add "$f includes core/$inc.h, which $m may not include" ;; esac
  done
  hits=$(grep -nE '<iostream>|<fstream>|io_context|udp::socket|tcp::socket|steady_timer|async_|syslog|Clock::now' "$f" | sed "s|^|$f:|")
  [ -n "$hits" ] && add "$hits"
done
if [ -z "$bad" ]; then
  echo "PASS layers: core includes only core, io no app, and the core's include graph points down"
else
  printf 'FAIL layers:\n%s' "$bad"
  exit 1
fi
