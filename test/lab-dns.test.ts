// The lab's DNS server: the program's records answered over UDP and TCP as an authoritative
// server would, and a new record set served without a restart. Runs on loopback.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as dnsPacket from "dns-packet";
import { directoryIndexName, parseRecord } from "../components/directory-records";
import { dnsServerCommand, waitServed, writeZone } from "../scripts/lab/dns";
import { LabDnsRecord, programDnsRecords } from "../scripts/lab/dns-zone";
import { evaluate } from "./helpers/program";

const ADDRESS = "127.0.0.1";

function udpQuery(port: number, name: string, type: dnsPacket.RecordType, edns = false): Promise<dnsPacket.DecodedPacket> {
    return new Promise((resolve, reject) => {
        const sock = createSocket("udp4");
        const timer = setTimeout(() => { sock.close(); reject(new Error(`no UDP answer for ${name} ${type} in 2 s`)); }, 2000);
        sock.on("message", (msg) => { clearTimeout(timer); sock.close(); resolve(dnsPacket.decode(msg)); });
        const additionals: dnsPacket.Answer[] = edns ? [{ type: "OPT", name: ".", udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
        sock.send(dnsPacket.encode({ type: "query", id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }], additionals }), port, ADDRESS);
    });
}

function tcpQuery(port: number, name: string, type: dnsPacket.RecordType): Promise<dnsPacket.DecodedPacket> {
    return new Promise((resolve, reject) => {
        const sock = connect({ host: ADDRESS, port });
        let buf = Buffer.alloc(0);
        sock.setTimeout(2000, () => { sock.destroy(); reject(new Error(`no TCP answer for ${name} in 2 s`)); });
        sock.on("error", reject);
        sock.on("data", (d) => {
            buf = Buffer.concat([buf, d]);
            if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
                sock.destroy();
                resolve(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
            }
        });
        const q = dnsPacket.encode({ type: "query", id: 9, questions: [{ type, name }] });
        const framed = Buffer.alloc(2 + q.length);
        framed.writeUInt16BE(q.length, 0);
        q.copy(framed, 2);
        sock.write(framed);
    });
}

/** The address (or target) of the first answer. */
const first = (p: dnsPacket.DecodedPacket) => (p.answers?.[0] as dnsPacket.StringAnswer | undefined)?.data;
const rcode = (p: dnsPacket.DecodedPacket) => (p as unknown as { rcode: string }).rcode;
const txt = (p: dnsPacket.DecodedPacket) => p.answers?.filter((a) => a.type === "TXT").map((a) => (a.data as Buffer[]).map((b) => b.toString()).join("")) ?? [];

describe("lab DNS server", function () {
    this.timeout(60000);
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-dns-"));
    const zone = join(dir, "zone.json");
    let server: ChildProcess | undefined;
    let port = 0;
    let records: LabDnsRecord[] = [];

    before(async () => {
        const prod = await evaluate();
        records = [...programDnsRecords(prod), { name: "alias.lab.test", type: "CNAME", ttl: 60, data: "app-1.prod.nodes.example.com" }, { name: "big.lab.test", type: "TXT", ttl: 60, data: Array.from({ length: 8 }, () => "y".repeat(255)) }];
        const generation = writeZone(zone, records);
        // A free port on loopback: a few tries at random high ports.
        for (let attempt = 0; attempt < 5 && !server; attempt++) {
            port = 20000 + Math.floor(Math.random() * 30000);
            const [cmd, ...args] = dnsServerCommand(ADDRESS, port, zone);
            const child = spawn(cmd, args, { stdio: "ignore" });
            try {
                await waitServed(zone, generation, 10000);
                server = child;
            } catch {
                child.kill("SIGKILL");
            }
        }
        assert.ok(server, "the DNS server did not start");
    });

    after(() => {
        server?.kill("SIGTERM");
        rmSync(dir, { recursive: true, force: true });
    });

    it("serves every record the program gave Cloudflare: node addresses and the signed directory", async () => {
        assert.ok(records.some((r) => r.type === "A") && records.some((r) => r.type === "TXT"));
        const a = await udpQuery(port, "db-1.prod.nodes.example.com", "A");
        assert.ok(a.flag_aa);
        assert.equal(first(a), records.find((r) => r.name === "db-1.prod.nodes.example.com" && r.type === "A")?.data);
        const index = directoryIndexName("prod.nodes.example.com");
        const found = txt(await udpQuery(port, index.toUpperCase(), "TXT", true));
        assert.equal(found.length, 1);
        // What arrives over DNS verifies against the key in the nodes' user-data.
        const prod = await evaluate();
        const key = /"publicKey": "([^"]+)"/.exec(prod.userData["app-1"])?.[1] as string;
        const parsed = parseRecord(index, found[0], key);
        assert.equal(parsed.kind, "index");
    });

    it("answers NXDOMAIN for unknown names, NODATA for names without that type, and follows CNAMEs", async () => {
        assert.equal(rcode(await udpQuery(port, "nope.prod.nodes.example.com", "A")), "NXDOMAIN");
        const nodata = await udpQuery(port, "prod.nodes.example.com", "A"); // only names below it exist
        assert.equal(rcode(nodata), "NOERROR");
        assert.equal(nodata.answers?.length, 0);
        const aaaaOnly = await udpQuery(port, "_mesh.app-1.prod.nodes.example.com", "A");
        assert.equal(rcode(aaaaOnly), "NOERROR");
        assert.equal(aaaaOnly.answers?.length, 0);
        const chain = await udpQuery(port, "alias.lab.test", "A");
        assert.deepEqual(chain.answers?.map((x) => x.type), ["CNAME", "A"]);
    });

    it("truncates a large answer over UDP and gives it whole over TCP", async () => {
        const udp = await udpQuery(port, "big.lab.test", "TXT");
        assert.ok(udp.flag_tc);
        assert.equal(udp.answers?.length, 0);
        const tcp = await tcpQuery(port, "big.lab.test", "TXT");
        assert.equal(txt(tcp)[0].length, 8 * 255);
    });

    it("serves a replaced record set without a restart", async () => {
        const moved = records.map((r) => (r.name === "db-1.prod.nodes.example.com" && r.type === "A" ? { ...r, data: "198.18.9.9" } : r));
        await waitServed(zone, writeZone(zone, moved.filter((r) => !r.name.endsWith("app-2.prod.nodes.example.com"))), 5000);
        assert.equal(first(await udpQuery(port, "db-1.prod.nodes.example.com", "A")), "198.18.9.9");
        assert.equal(rcode(await tcpQuery(port, "app-2.prod.nodes.example.com", "A")), "NXDOMAIN");
    });
});
