// Bringing the lab up: the program evaluated, its nodes realized, the stack outputs the lab's
// clients need saved, then a bounded wait until every node is healthy. On failure the nodes'
// last log lines are shown and everything is taken down again.
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isAlive } from "./procs";
import { mockOriginCa } from "../lib/mock-tls";
import { Log } from "./exec";
import { NodeHealth, waitHealthy } from "./health";
import { LabStack, labStack, saveLabStack } from "./stack";
import { startEdges, writeOriginPull } from "./edge";
import { LabProgram, labProgram, StackSource } from "./program";
import type { LabDnsRecord } from "./dns-zone";
import { BRIDGE_ADDRESS, CACHE_DIR } from "./paths";
import { LabNodeSpec, nodeLogTails, realizeNodes, teardown } from "./realize";
import { labTls, s3EndpointOf, startS3 } from "./s3";
import { prepareAppNodes } from "./containers";
import { RECEIVER_HOST, startReceiver } from "./receiver";

export const HEALTHY_TIMEOUT_MS = 180_000;

// Whether this process brought the lab up: the mock runtime's desired-state generations and
// certificates are this process's, so only it can publish a change the nodes take.
let broughtUp = false;

/** Stops `drill` unless this process brought the lab up, saying how to run it. */
export function requireOwnBringUp(drill: string): void {
    if (broughtUp) return;
    throw new Error(`${drill} publishes desired state, which the nodes take only from the process that brought the lab up (the mock runtime's generations and certificates are that process's): run it with npm run lab -- all --drills ${drill}, npm run lab (every drill) or npm run bench -- --lab`);
}

/** CACHE_DIR/tls/<this PID>; the directories of processes gone are removed first. */
function ownTlsDir(): string {
    const root = join(CACHE_DIR, "tls");
    mkdirSync(root, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(root)) {
        // Directories of runs no longer alive (other files are not this layout's to remove).
        if (/^\d+$/.test(name) && !isAlive(Number(name))) rmSync(join(root, name), { recursive: true, force: true });
    }
    return join(root, String(process.pid));
}

/** What the nodes' resolver serves: what the program gave Cloudflare, R2's name for the lab's S3, the alert receiver's. */
export function labDnsRecords(program: LabProgram): LabDnsRecord[] {
    const s3 = s3EndpointOf(program.specs);
    const bridge = (name: string) => ({ name, type: "A" as const, ttl: 60, data: BRIDGE_ADDRESS });
    return [...program.dnsRecords, ...(s3 ? [bridge(s3.host)] : []), bridge(RECEIVER_HOST)];
}

export async function bringUp(source: StackSource, log: Log): Promise<{ specs: LabNodeSpec[]; health: NodeHealth[]; seconds: number }> {
    log(`lab: evaluating the program for stack "${source.stack}" (${source.file})`);
    const program = await labProgram(source);
    const t = Date.now();
    // Backups go to an S3 endpoint off both providers; in the lab, s3rver plays it.
    const s3 = s3EndpointOf(program.specs);
    // One certificate for the lab's services on the bridge (the S3 endpoint, the alert receiver),
    // in this process's own directory: it is made before the lab's lock is taken, and a run
    // queued behind this one must not replace the CA this one's nodes trust.
    const tls = await labTls(ownTlsDir(), [...(s3 ? [s3.host] : []), RECEIVER_HOST]);
    const appNodes = program.specs.filter((n) => n.role === "app").map((n) => n.name);
    const dns = labDnsRecords(program);
    const { lockWaitSeconds } = await realizeNodes(program.specs, log, {
        dns,
        caCertPem: tls.caCertPem,
        beforeApply: async () => {
            if (s3) await startS3(s3, tls, log);
            // From before the first cloud-config: the receiver's record covers the whole bring-up.
            await startReceiver(tls, log);
            await prepareAppNodes(appNodes, program.app, log);
        },
    });
    try {
        saveLabStack({
            ...(program.connectionString ? { connectionString: program.connectionString } : {}),
            ...(program.pooledConnectionString ? { pooledConnectionString: program.pooledConnectionString } : {}),
            app: program.app, hostname: program.hostname, source,
        });
        // What Cloudflare presents to the origins: the edge and the drills' direct clients present it too.
        writeOriginPull(program.originPull);
        const health = await waitHealthy(log, HEALTHY_TIMEOUT_MS);
        // Cloudflare in front, once there is something behind it to check.
        if (program.edge) {
            const edges = await startEdges(program.edge, program.specs, mockOriginCa().certPem, log);
            saveLabStack({ ...(labStack() as LabStack), edges });
        }
        saveLabStack({ ...(labStack() as LabStack), upAt: Date.now() });
        broughtUp = true;
        const seconds = (Date.now() - t) / 1000 - lockWaitSeconds;
        log(`lab: up in ${seconds.toFixed(1)} s${lockWaitSeconds >= 1 ? ` (after ${lockWaitSeconds.toFixed(0)} s waiting for another lab to go)` : ""}`);
        return { specs: program.specs, health, seconds };
    } catch (e) {
        log(`lab: bring-up failed; the nodes' last log lines:\n${nodeLogTails(8)}`);
        await teardown(log);
        throw e;
    }
}
