// The lab's DNS server: authoritative over UDP and TCP for the records in a zone file (see
// dns-zone.ts), which it reads again whenever the file is replaced, so the lab can publish a
// new record set (a changed node set) while the nodes keep asking. After each load it writes
// the loaded generation to <zone>.served, which is how a publisher knows it is being served.
//   usage: dns-server.ts --address A --port P --zone FILE
import { createSocket } from "node:dgram";
import { readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import * as dnsPacket from "dns-packet";
import { parseArgs } from "../lib/args";
import { answerQuery, LabDnsRecord, LabDnsZone } from "./dns-zone";

const RELOAD_CHECK_MS = 200;
/** A TCP client that sends nothing for this long is dropped. */
const TCP_IDLE_MS = 10_000;

function main(): void {
    const v = parseArgs(process.argv.slice(2), { values: ["address", "port", "zone"] }).values as Record<string, string>;
    const port = Number(v.port);
    let records: LabDnsRecord[] = [];
    let loaded = "";
    const reload = () => {
        const s = statSync(v.zone, { throwIfNoEntry: false });
        const stamp = s ? `${s.mtimeMs}/${s.size}/${s.ino}` : "";
        if (!s || stamp === loaded) return;
        try {
            const zone = JSON.parse(readFileSync(v.zone, "utf8")) as LabDnsZone;
            records = zone.records;
            loaded = stamp;
            const tmp = `${v.zone}.served.tmp`;
            writeFileSync(tmp, String(zone.generation));
            renameSync(tmp, `${v.zone}.served`);
            console.log(`dns: serving generation ${zone.generation} (${records.length} records)`);
        } catch (e) {
            console.error(`dns: cannot read ${v.zone}: ${(e as Error).message}; still serving the previous records`);
        }
    };
    // The first load (and its .served file) waits until both sockets listen: served means answering.
    let listening = 0;
    const onListening = () => {
        if (++listening < 2) return;
        console.log(`dns: listening on ${v.address}:${port} (UDP and TCP)`);
        reload();
        setInterval(reload, RELOAD_CHECK_MS);
    };

    const udp = createSocket("udp4");
    udp.on("message", (msg, rinfo) => {
        try {
            udp.send(answerQuery(dnsPacket.decode(msg), records, true), rinfo.port, rinfo.address);
        } catch (e) {
            console.error(`dns: bad query from ${rinfo.address}: ${(e as Error).message}`);
        }
    });
    udp.bind(port, v.address, onListening);

    // TCP: each message is preceded by its 2-byte length; a client may send several.
    const tcp = createServer((sock: Socket) => {
        let buffered = Buffer.alloc(0);
        sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
        sock.on("error", () => sock.destroy());
        sock.on("data", (chunk) => {
            buffered = Buffer.concat([buffered, chunk]);
            while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
                const len = buffered.readUInt16BE(0);
                const msg = buffered.subarray(2, 2 + len);
                buffered = buffered.subarray(2 + len);
                try {
                    const answer = answerQuery(dnsPacket.decode(msg), records, false);
                    const framed = Buffer.alloc(2 + answer.length);
                    framed.writeUInt16BE(answer.length, 0);
                    answer.copy(framed, 2);
                    sock.write(framed);
                } catch (e) {
                    console.error(`dns: bad TCP query: ${(e as Error).message}`);
                    sock.destroy();
                    return;
                }
            }
        });
    });
    tcp.listen(port, v.address, onListening);
    const stop = () => {
        udp.close();
        tcp.close();
        process.exit(0);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main();
