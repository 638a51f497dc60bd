#!/bin/sh
# Installs the Debian packages anyrtpproxy needs, only those that are missing.
#   tests/install-deps.sh build   compiler, Boost development libraries, and clang, libbpf and
#                                 bpftool for the kernel fast path (--kernel-offload)
#   tests/install-deps.sh test    the above, plus Boost.Test, Python 3, Kamailio and sipp,
#                                 clang with the libFuzzer/sanitizer runtime, packaging tools,
#                                 prometheus (promtool and a server), systemd (systemd-analyze) and
#                                 ethtool (full checksums on the fast path's test veths), and the
#                                 routing daemons BIRD 2 and ExaBGP (their services kept from
#                                 starting: the tests run their own, in namespaces)
set -eu
want="g++ make libboost-dev libboost-system-dev libboost-thread-dev libboost-serialization-dev libboost-program-options-dev libssl-dev clang libbpf-dev bpftool linux-libc-dev"
case "${1:-build}" in
  build) ;;
  test) want="$want libboost-test-dev python3 python3-pytest kamailio sip-tester iproute2 procps util-linux debhelper dpkg-dev lintian nftables clang libclang-rt-14-dev openssl prometheus systemd ethtool bird2 exabgp" ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
missing=
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps: all needed Debian packages are installed"
  exit 0
fi
echo "install-deps: installing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root (or install them yourself: apt-get install$missing)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# Packages' services (bird, exabgp) must not start here: policy-rc.d says no
# to every start while installing, and goes when done.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
