// DNS in the lab: the records the program gave Cloudflare, served for real on the lab bridge
// (198.18.0.1, UDP and TCP 53), the only resolver the nodes have. Nodes find each other, their
// directory and the R2 stand-in through it, as real nodes do through their provider's resolver.
// publishDns replaces the record set while the server runs (a changed node set, a drill).
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Log, sleep } from "./exec";
import { LabDnsRecord, LabDnsZone } from "./dns-zone";
import { BRIDGE_ADDRESS, STATE_DIR } from "./paths";
import { updateState } from "./state";

export const LAB_DNS_PORT = 53;
const DNS_DIR = join(STATE_DIR, "dns");
const ZONE_FILE = join(DNS_DIR, "zone.json");
const SERVED_WAIT_MS = 10_000;

/** Starts a DNS server process for `zoneFile` on address:port (argv for spawn; runs node directly, so its PID is the server's). */
export function dnsServerCommand(address: string, port: number, zoneFile: string): string[] {
    return [process.execPath, "--require", require.resolve("tsx/cjs"), join(__dirname, "dns-server.ts"), "--address", address, "--port", String(port), "--zone", zoneFile];
}

/** Writes the zone file atomically and waits (bounded) until the server says it serves it. */
export function writeZone(zoneFile: string, records: LabDnsRecord[]): number {
    const previous = existsSync(zoneFile) ? (JSON.parse(readFileSync(zoneFile, "utf8")) as LabDnsZone).generation : 0;
    const zone: LabDnsZone = { generation: previous + 1, records };
    const tmp = `${zoneFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(zone));
    renameSync(tmp, zoneFile);
    return zone.generation;
}

export async function waitServed(zoneFile: string, generation: number, timeoutMs = SERVED_WAIT_MS): Promise<void> {
    const served = `${zoneFile}.served`;
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
        if (existsSync(served) && Number(readFileSync(served, "utf8")) >= generation) return;
    }
    throw new Error(`lab: the DNS server did not load generation ${generation} of ${zoneFile} within ${timeoutMs / 1000} s`);
}

/** The lab's DNS server on the bridge, recorded for `down`; returns once it serves `records`. */
export async function startLabDns(records: LabDnsRecord[], log: Log): Promise<void> {
    mkdirSync(DNS_DIR, { recursive: true });
    const generation = writeZone(ZONE_FILE, records);
    const out = openSync(join(DNS_DIR, "dns.log"), "a");
    const [cmd, ...args] = dnsServerCommand(BRIDGE_ADDRESS, LAB_DNS_PORT, ZONE_FILE);
    const child = spawn(cmd, args, { detached: true, stdio: ["ignore", out, out] });
    closeSync(out);
    if (!child.pid) throw new Error("lab: could not start the DNS server");
    const pid = child.pid;
    child.unref();
    updateState((s) => (s.services = [...(s.services ?? []), { name: "dns server", pid }]));
    await waitServed(ZONE_FILE, generation);
    log(`lab: DNS on ${BRIDGE_ADDRESS}:${LAB_DNS_PORT} (UDP, TCP) serving ${records.length} records`);
}

/** Replaces what the lab's DNS server serves; returns once it serves the new set. */
export async function publishLabDns(records: LabDnsRecord[], log: Log): Promise<void> {
    const generation = writeZone(ZONE_FILE, records);
    await waitServed(ZONE_FILE, generation);
    log(`lab: DNS now serves generation ${generation} (${records.length} records)`);
}
