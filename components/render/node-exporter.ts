// node_exporter 1.9 (Debian 13's `prometheus-node-exporter`) on every node: the flags Debian's
// unit reads from /etc/default/prometheus-node-exporter. The systemd collector (failed units) and
// the textfile directory holding vps-ha's signals (./signals.ts) are named, not left to defaults.
import { TEXTFILE_DIR } from "./signals";

export const NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter";
export const NODE_EXPORTER_UNIT = "prometheus-node-exporter.service";

export interface NodeExporterSpec {
    /** This node's mesh address: /metrics listens there only. */
    listenAddress: string;
    port: number;
}

export function renderNodeExporterDefaults(spec: NodeExporterSpec): string {
    if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(spec.listenAddress)) throw new Error(`node-exporter: listenAddress "${spec.listenAddress}" is not an IPv4 address`);
    const args = [`--web.listen-address=${spec.listenAddress}:${spec.port}`, "--collector.systemd", `--collector.textfile.directory=${TEXTFILE_DIR}`];
    return `# vps-ha: flags for Debian's prometheus-node-exporter.service. Rendered by the program.\nARGS="${args.join(" ")}"\n`;
}
