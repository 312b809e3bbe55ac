// The WireGuard mesh, as wg-quick reads it: this node's own interface only. Its peers are not in
// this file (nor anywhere in the node's user-data): the directory agent (render/directory-agent.ts)
// adds, updates and removes them at run time from the signed directory in DNS, endpoints
// included, so a node that boots before its peers' DNS records exist finds them later.
export const MESH_INTERFACE = "wg0";
export const WIREGUARD_DIR = "/etc/wireguard";
/** Peers are kept alive through NAT and stateful firewalls (WireGuard's recommended value). */
export const PERSISTENT_KEEPALIVE_SECONDS = 25;

export interface MeshInterface {
    privateKey: string;
    meshAddress: string;
    prefixLength: number;
    listenPort: number;
}

export function renderWireguardConfig(m: MeshInterface): string {
    return ["[Interface]", `Address = ${m.meshAddress}/${m.prefixLength}`, `ListenPort = ${m.listenPort}`, `PrivateKey = ${m.privateKey}`].join("\n") + "\n";
}
