// An HAProxy node in a sandbox, as the tests that run the real HAProxy set it up: its rendered
// files, an app server filled in as the directory agent would, stand-in status servers for the
// nodes the rollout view reads, and the lab's edge in front of it as Cloudflare's part.
import { ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { DirectoryHaproxy } from "../../components/render/directory-agent";
import { HAPROXY_CFG } from "../../components/render/haproxy";
import { EdgeConfig, edgePlanOf, originPullClientOf } from "../../scripts/lab/edge/spec";
import { Evaluation } from "../../scripts/lib/mock-program";
import { mockOriginCa } from "../../scripts/lib/mock-tls";
import { Sandbox } from "./sandbox";

const ROOT = join(__dirname, "..", "..");

export function filesOf(userData: string): { path: string; content: string; permissions?: string }[] {
    return parse(userData).write_files as { path: string; content: string; permissions?: string }[];
}

/** haproxy.cfg with one app server (at `address`:8921) between the agent's markers, as the directory agent writes it. */
export function withServers(files: Record<string, string>, address: string): string {
    const agent = (JSON.parse(files["/etc/vps-ha/directory.d/haproxy.json"]) as { haproxy: DirectoryHaproxy }).haproxy;
    let filled = files[HAPROXY_CFG];
    for (const b of agent.blocks.filter((x) => x.role === "app")) {
        filled = filled.replace(`${b.begin}\n`, `${b.begin}\n${b.line.replace("{name}", "app-1").replace("{address}", address).replaceAll("{port}", "8921")}\n`);
    }
    return filled;
}

/** A stand-in status server: each connection gets the JSON file's current content, as the socket unit's service answers. */
export const STATUS_STAND_IN = `import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
while True:
    c, _ = s.accept()
    with open(sys.argv[3], "rb") as f:
        c.sendall(f.read())
    c.close()
`;

export interface SandboxEdge {
    child: ChildProcess;
    /** The edge's monitor events (JSON lines). */
    eventLog: string;
}

/**
 * The lab's edge as the lab runs it (the program's load balancer for `hostname`), in `node`'s
 * namespace, listening on `address`:`port` and sending to that node's HAProxy: it presents the
 * origin-pull certificate, as Cloudflare does; its monitor checks every second.
 */
export function startEdge(sb: Sandbox, node: string, prod: Evaluation, hostname: string, address: string, port: number): SandboxEdge {
    const plan = edgePlanOf(prod, hostname);
    if (!plan) throw new Error(`the program makes no load balancer for ${hostname}`);
    const pull = originPullClientOf(prod, hostname);
    const file = (name: string, content: string) => {
        const path = join(sb.dir, name);
        writeFileSync(path, content, { mode: 0o600 });
        return path;
    };
    const config: EdgeConfig = {
        ...plan, origins: [{ name: node, address }], fallback: node, monitor: { ...plan.monitor, intervalSeconds: 1 },
        listen: { address, port }, originCaFile: file("origin-ca.pem", mockOriginCa().certPem),
        originPullCertFile: file("pull.crt", pull.certificate), originPullKeyFile: file("pull.key", pull.privateKey), eventLog: file("edge-events.jsonl", ""),
    };
    const child = spawn("nsenter", [`--net=/run/netns/${sb.netns(node)}`, "--", process.execPath, join(ROOT, "node_modules/tsx/dist/cli.mjs"), join(ROOT, "scripts/lab/edge/edge-server.ts"), "--config", file("edge.json", JSON.stringify(config))], { stdio: ["ignore", "ignore", "pipe"] });
    return { child, eventLog: config.eventLog };
}
