// The release gate: what `pulumi up` runs (through @pulumi/command) after the release record
// changed, before it reports success. It asks HAProxy's readiness answer on each hostname until
// every app node is up in that hostname's backend at the new release's port, on several reads in a
// row, within a bound. Pure text, so the lab runs the very script the program created.
//
// Several reads in a row, not one: HAProxy 3.0 starts a server it has just been given as up,
// before its first check, so one good answer right after a reload proves nothing; a server that
// does not answer is marked down within 1.5 s (3 checks 500 ms apart) and the run starts over.
import { shellQuote } from "./shell";

export interface GateCheck {
    /** e.g. https://candidate.example.com/vps-ha/ready */
    url: string;
    /** What a ready answer is: "<app nodes> <port>". */
    expect: string;
}

export interface ReleaseGate {
    checks: GateCheck[];
    timeoutSeconds: number;
    /** Seconds between rounds of checks. */
    everySeconds: number;
    /** Rounds in a row that must all pass. */
    stableRounds: number;
}

export function renderReleaseGate(g: ReleaseGate): string {
    const checks = g.checks.map((c) => `  check ${shellQuote(c.url)} ${shellQuote(c.expect)}`).join("\n");
    return `#!/bin/sh
# vps-ha release gate: every app node healthy in the new release, seen ${g.stableRounds} times in a row, within ${g.timeoutSeconds} s.
# VPS_HA_GATE_CURL_ARGS: extra curl arguments (a test edge's --resolve and CA, say).
set -u
deadline=$(( $(date +%s) + ${g.timeoutSeconds} ))
good=0
check() {
  got=$(curl -fsS --max-time 5 \${VPS_HA_GATE_CURL_ARGS:-} "$1" 2>&1) || got="no answer ($got)"
  if [ "$got" != "$2" ]; then ok=0; report="$report; $1 answered '$got', ready is '$2' (app nodes up, port)"; fi
}
while :; do
  ok=1
  report=""
${checks}
  if [ "$ok" = 1 ]; then
    good=$((good + 1))
    if [ "$good" -ge ${g.stableRounds} ]; then echo "release gate: every app node is up in the new release"; exit 0; fi
  else
    good=0
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "release gate: not every app node became healthy in the new release within ${g.timeoutSeconds} s$report" >&2
    echo "release gate: the release record is published; fix the image (or set the previous release back) and run pulumi up again" >&2
    exit 1
  fi
  sleep ${g.everySeconds}
done
`;
}
