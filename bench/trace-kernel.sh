#!/usr/bin/env bash
# The long run of test/netns/trace-kernel.test.ts: the simulator (trace and verdict programs)
# against the real kernel with more random scenarios and packets, and a seed of your choice.
# Root; needs what `npm test` needs (iptables, ipset, conntrack, python3-scapy).
#   bench/trace-kernel.sh [PACKETS_PER_SCENARIO] [RANDOM_SCENARIOS] [SEED]
# Prints one line per scenario ("N packets, D delivered, M mismatches") and fails on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
export SGWALL_TRACE_PACKETS="${1:-200}"
export SGWALL_TRACE_SCENARIOS="${2:-12}"
export SGWALL_TRACE_SEED="${3:-$(date +%s)}"
echo "trace vs kernel: ${SGWALL_TRACE_PACKETS} packets per scenario, ${SGWALL_TRACE_SCENARIOS} random scenarios, seed ${SGWALL_TRACE_SEED}"
exec npx vitest run --project system test/netns/trace-kernel.test.ts
