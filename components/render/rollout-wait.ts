// The rollout wait: what `pulumi up` runs (through @pulumi/command) after it published the nodes'
// desired state. It asks the HAProxy nodes' rollout view (render/rollout-view.ts) through the
// app's hostname, with the generation each node must reach, until every node applied it (exit 0),
// a node halted (exit 1, naming it and why) or the bound passed (exit 1, naming the nodes still
// pending and their state). Pure text, so tests and the lab run the very script the program made.
import { ROLLOUT_TOKEN_HEADER } from "./haproxy";
import { ROLLOUT_VIEW_PATH } from "./rollout-view";
import { shellQuote } from "./shell";

/** The environment variable the script reads the token from (the command's environment: a secret). */
export const ROLLOUT_TOKEN_ENV = "VPS_HA_ROLLOUT_TOKEN";

export interface RolloutWait {
    /** e.g. ["app.example.com", "candidate.example.com"]: asked in turn until one answers. */
    hostnames: string[];
    /** The generation each node must reach (this run's published generations). */
    want: Record<string, number>;
    timeoutSeconds: number;
    /** Seconds between rounds. */
    everySeconds: number;
}

/** The view's query: `want=name:generation,...`, names sorted. */
export function wantQuery(want: Record<string, number>): string {
    const items = Object.entries(want).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, g]) => {
        if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) throw new Error(`rollout wait: node name ${JSON.stringify(name)} is not a DNS label`);
        if (!Number.isSafeInteger(g) || g < 1) throw new Error(`rollout wait: ${name}'s generation ${g} is not a positive whole number`);
        return `${name}:${g}`;
    });
    return `want=${items.join(",")}`;
}

export function renderRolloutWait(w: RolloutWait): string {
    if (w.hostnames.length === 0) throw new Error("rollout wait: no hostname to ask");
    const urls = w.hostnames.map((h) => shellQuote(`https://${h}${ROLLOUT_VIEW_PATH}?${wantQuery(w.want)}`)).join(" ");
    return `#!/bin/sh
# vps-ha rollout wait: every node's desired state applied and healthy, within ${w.timeoutSeconds} s; a halt fails at once.
# ${ROLLOUT_TOKEN_ENV}: the token HAProxy asks for (sent on stdin to curl, never in its arguments).
# VPS_HA_GATE_CURL_ARGS: extra curl arguments (a test edge's --resolve and CA, say).
set -u
if [ -z "\${${ROLLOUT_TOKEN_ENV}:-}" ]; then echo "rollout wait: ${ROLLOUT_TOKEN_ENV} is not set" >&2; exit 2; fi
deadline=$(( $(date +%s) + ${w.timeoutSeconds} ))
last="no answer yet"
while :; do
  for url in ${urls}; do
    body=$(printf '${ROLLOUT_TOKEN_HEADER}: %s\\n' "$${ROLLOUT_TOKEN_ENV}" | curl -fsS --max-time 20 -H @- \${VPS_HA_GATE_CURL_ARGS:-} "$url" 2>&1) || { last="\${url%%\\?*} gave no answer ($body)"; continue; }
    state=$(printf '%s\\n' "$body" | sed -n 's/^ "state": "\\([a-z]*\\)",$/\\1/p')
    summary=$(printf '%s\\n' "$body" | sed -n 's/^ "summary": "\\(.*\\)",$/\\1/p')
    case "$state" in
      done) echo "rollout wait: $summary"; exit 0 ;;
      halted)
        echo "rollout wait: $summary" >&2
        echo "rollout wait: the nodes not yet changed keep their old state; fix the change and run pulumi up again" >&2
        exit 1 ;;
      pending) last="$summary"; break ;;
      *) last="\${url%%\\?*} answered no rollout view: $(printf '%s' "$body" | head -c 300)" ;;
    esac
  done
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "rollout wait: the rollout did not finish within ${w.timeoutSeconds} s: $last" >&2
    echo "rollout wait: the change is published; the nodes go on converging (vps-ha:rollout.waitSeconds sets this bound)" >&2
    exit 1
  fi
  sleep ${w.everySeconds}
done
`;
}
