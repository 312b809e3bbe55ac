// The WireGuard mesh, as wg-quick reads it. Peers carry no Endpoint here: a node's peers may not
// have DNS records yet when it first boots, and wg-quick refuses a name it cannot resolve. The
// endpoints file and script below set (and keep re-setting) each peer's endpoint from DNS, and
// WireGuard's roaming follows a peer that comes back on a new address.
export const MESH_INTERFACE = "wg0";
export const WIREGUARD_DIR = "/etc/wireguard";
export const ENDPOINTS_FILE = `${WIREGUARD_DIR}/${MESH_INTERFACE}.endpoints`;
export const ENDPOINTS_SCRIPT = "/usr/local/sbin/vps-ha-mesh-endpoints";
/** A handshake younger than this means the endpoint works; older ones are looked up again. */
const STALE_HANDSHAKE_SECONDS = 150;

export interface MeshPeer {
    name: string;
    publicKey: string;
    meshAddress: string;
    dnsName: string;
}

export interface MeshInterface {
    privateKey: string;
    meshAddress: string;
    prefixLength: number;
    listenPort: number;
    peers: MeshPeer[];
}

export function renderWireguardConfig(m: MeshInterface): string {
    const lines = ["[Interface]", `Address = ${m.meshAddress}/${m.prefixLength}`, `ListenPort = ${m.listenPort}`, `PrivateKey = ${m.privateKey}`];
    for (const p of m.peers) {
        lines.push("", `# ${p.name}`, "[Peer]", `PublicKey = ${p.publicKey}`, `AllowedIPs = ${p.meshAddress}/32`, "PersistentKeepalive = 25");
    }
    return lines.join("\n") + "\n";
}

/** One line per peer: public key, DNS name, port. */
export function renderEndpoints(m: MeshInterface): string {
    return m.peers.map((p) => `${p.publicKey} ${p.dnsName} ${m.listenPort}`).join("\n") + "\n";
}

export function renderEndpointsScript(): string {
    return `#!/bin/sh
# Set each mesh peer's endpoint from its DNS name, unless its last handshake is recent.
# Run after wg-quick brings ${MESH_INTERFACE} up and then every 30 s by a timer, so a peer whose
# record did not exist yet, or that came back on a new address, is found again.
set -u
now=$(date +%s)
wg show ${MESH_INTERFACE} latest-handshakes > /run/${MESH_INTERFACE}.handshakes 2>/dev/null || exit 0
while read -r key host port; do
  [ -n "$key" ] || continue
  last=$(awk -v k="$key" '$1 == k { print $2 }' /run/${MESH_INTERFACE}.handshakes)
  if [ -n "$last" ] && [ "$last" -gt 0 ] && [ $((now - last)) -lt ${STALE_HANDSHAKE_SECONDS} ]; then continue; fi
  addr=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
  [ -n "$addr" ] || continue
  wg set ${MESH_INTERFACE} peer "$key" endpoint "$addr:$port" || true
done < ${ENDPOINTS_FILE}
exit 0
`;
}
