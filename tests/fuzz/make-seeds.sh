#!/bin/sh
# Writes the fuzzers' seed corpora (tests/fuzz/corpus/*) from the golden files:
# every request of the protocol transcript, the transcript as command
# sequences, and the golden sync stream whole and frame by frame. The seeds
# are committed; run this again after changing tests/golden.
set -eu
cd "$(dirname "$0")"
golden=../golden
rm -rf corpus && mkdir -p corpus/request corpus/controller corpus/sync
# request: "<cookie> <command>" datagrams
sed -n 's/^> \{0,1\}//p' "$golden/commands.txt" | awk '{ f = sprintf("corpus/request/r%03d", NR); printf "c%d %s", NR, $0 > f; close(f) }'
# controller: the transcript's requests as sequences, cut where the transcript forgets its ports ("~")
awk -v dir=corpus/controller '
  /^~/ { n++; next }
  /^>/ { line = substr($0, 3); f = sprintf("%s/seq%02d", dir, n); print line >> f; close(f) }
' "$golden/commands.txt"
sed -n 's/^> \{0,1\}//p' "$golden/commands.txt" > corpus/controller/all
# sync: the first byte picks the chunk size (1, 65, 1025 bytes), the rest is the stream
for v in 1 2 3 4 5 6; do
  for b in 000 001 020; do
    { printf "\\$b"; cat "$golden/sync-v$v.frames"; } > "corpus/sync/v$v-stream-$b"
  done
  awk -v dir=corpus/sync -v v="$v" '
    /^F / { n++; f = sprintf("%s/v%s-frame%02d", dir, v, n); printf "\004" > f }
    n { print >> f; close(f) }
  ' "$golden/sync-v$v.frames"
done
echo "make-seeds: $(ls corpus/request | wc -l) requests, $(ls corpus/controller | wc -l) sequences, $(ls corpus/sync | wc -l) streams"
