// What `pulumi up` runs (through @pulumi/command) after enabling Authenticated Origin Pulls for the
// stack's hostnames, before the HAProxy nodes are told to require the certificate: it asks
// Cloudflare's API until every hostname's association is active (Cloudflare deploys it in the
// background, minutes at most), within a bound. Until then Cloudflare may still connect without
// the certificate, which HAProxy would refuse. Pure text, so tests run the very script.
import { shellQuote } from "./shell";

export interface OriginPullWait {
    zoneId: string;
    hostnames: string[];
    timeoutSeconds: number;
    /** Seconds between rounds of questions. */
    everySeconds: number;
}

/** The API the script asks unless VPS_HA_CF_API names another (a test's stand-in). */
export const CLOUDFLARE_API = "https://api.cloudflare.com/client/v4";

export function renderOriginPullWait(w: OriginPullWait): string {
    if (!/^[0-9a-f]{32}$/.test(w.zoneId)) throw new Error(`origin pull wait: zone id ${JSON.stringify(w.zoneId)} is not 32 hex digits`);
    const asks = w.hostnames.map((h) => `  ask ${shellQuote(h)}`).join("\n");
    return `#!/bin/sh
# vps-ha: wait (at most ${w.timeoutSeconds} s) until Authenticated Origin Pulls is active for every hostname of the stack.
# CLOUDFLARE_API_TOKEN: the token pulumi up uses; VPS_HA_CF_API: another API base (a test's stand-in).
set -u
api=\${VPS_HA_CF_API:-${CLOUDFLARE_API}}
deadline=$(( $(date +%s) + ${w.timeoutSeconds} ))
ask() {
  got=$(curl -fsS --max-time 10 -H "Authorization: Bearer \${CLOUDFLARE_API_TOKEN:-}" "$api/zones/${w.zoneId}/origin_tls_client_auth/hostnames/$1" 2>&1) || got="no answer ($got)"
  # The association's own status ("cert_status" is the certificate's, also active once deployed).
  if ! printf '%s' "$got" | tr -d ' \\n' | grep -q '"status":"active"'; then
    ok=0
    report="$report; $1: $(printf '%s' "$got" | tr -d '\\n' | grep -o '"status" *: *"[a-z_]*"' || printf '%s' "$got" | head -c 200)"
  fi
}
while :; do
  ok=1
  report=""
${asks}
  if [ "$ok" = 1 ]; then echo "origin pulls: active for every hostname"; exit 0; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "origin pulls: not active within ${w.timeoutSeconds} s$report" >&2
    echo "origin pulls: the HAProxy nodes were not told to require the certificate yet; run pulumi up again once Cloudflare shows it active" >&2
    exit 1
  fi
  sleep ${w.everySeconds}
done
`;
}
