#!/usr/bin/env bash
# Installs the Debian packages sgwall's tests and tools use on a fresh Debian 12 machine.
# Idempotent; run as root. Used by .ci/run and by the README's first commands.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  iptables ipset conntrack iproute2 kmod procps   # the dataplane the agent programs
  gcc libc6-dev                                    # builds native/sgwall-gai.so (scripts/build-native.sh)
  openvswitch-switch ethtool                       # OVS br-int (userspace datapath)
  iputils-ping netcat-openbsd socat tcpdump python3-scapy  # real packets in lab tests
  strace                                           # test/netns/restore-shim counts NETLINK_ROUTE sockets
  postgresql                                       # store tests on PostgreSQL
  python3-openstackclient                          # the unmodified openstack CLI against our API
  tempest neutron-tempest-plugin                   # Tempest security-group API tests against our API
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-debian-deps: need root to install: ${missing[*]}" >&2; exit 1; fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "install-debian-deps: all ${#PKGS[@]} packages present"
