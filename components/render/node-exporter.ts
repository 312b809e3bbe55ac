// node_exporter 1.9 (Debian 13's `prometheus-node-exporter`) on every node: the flags Debian's
// unit reads from /etc/default/prometheus-node-exporter. Debian's build has the systemd collector
// on (failed units) and reads vps-ha's signals from its default textfile directory (./signals.ts).
export const NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter";
export const NODE_EXPORTER_UNIT = "prometheus-node-exporter.service";

export interface NodeExporterSpec {
    /** This node's mesh address: /metrics listens there only. */
    listenAddress: string;
    port: number;
}

export function renderNodeExporterDefaults(spec: NodeExporterSpec): string {
    if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(spec.listenAddress)) throw new Error(`node-exporter: listenAddress "${spec.listenAddress}" is not an IPv4 address`);
    return `# vps-ha: flags for Debian's prometheus-node-exporter.service. Rendered by the program.\nARGS="--web.listen-address=${spec.listenAddress}:${spec.port}"\n`;
}
