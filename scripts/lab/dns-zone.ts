// The lab's DNS answers, pure: the records the program registered with Cloudflare (taken from the
// mocked evaluation, as the program gave them) plus the lab's own names, and how a query is
// answered from them, as an authoritative server would (NXDOMAIN, NODATA, CNAME chains, and
// truncation so a large TXT answer is fetched again over TCP).
import * as dnsPacket from "dns-packet";
import { txtStrings } from "../../components/directory-records";
import type { Evaluation } from "../lib/mock-program";

export const DNS_RECORD_TYPE = "cloudflare:index/dnsRecord:DnsRecord";
const SERVED_TYPES = ["A", "AAAA", "CNAME", "TXT"] as const;
export type ServedType = (typeof SERVED_TYPES)[number];

export interface LabDnsRecord {
    name: string;
    type: ServedType;
    ttl: number;
    /** Address or target name; for TXT, its character-strings. */
    data: string | string[];
}

/** The file the lab's DNS server serves: replaced whole, `generation` says which version. */
export interface LabDnsZone {
    generation: number;
    records: LabDnsRecord[];
}

const normal = (name: string) => name.toLowerCase().replace(/\.$/, "");

/** Every DNS record the program asked Cloudflare for, in a form the lab serves. */
export function programDnsRecords(e: Evaluation): LabDnsRecord[] {
    return e.resources.filter((r) => r.type === DNS_RECORD_TYPE).flatMap((r): LabDnsRecord[] => {
        const type = String(r.inputs.type) as ServedType;
        const content = String(r.inputs.content ?? "");
        if (!SERVED_TYPES.includes(type) || !content) return [];
        const ttl = Number(r.inputs.ttl ?? 60);
        return [{ name: normal(String(r.inputs.name)), type, ttl: ttl > 1 ? ttl : 300, data: type === "TXT" ? txtStrings(content) : normal(content) }];
    });
}

const RCODE = { noError: 0, nxDomain: 3, notImplemented: 4 } as const;
const CLASSIC_UDP_LIMIT = 512;
const EDNS_UDP_LIMIT = 1232;

function toAnswer(r: LabDnsRecord): dnsPacket.Answer {
    if (r.type === "TXT") return { type: "TXT", name: r.name, ttl: r.ttl, class: "IN", data: r.data as string[] };
    return { type: r.type, name: r.name, ttl: r.ttl, class: "IN", data: r.data as string };
}

/** The answer records for (name, type), following CNAMEs the zone holds; undefined: no such name. */
function lookup(records: LabDnsRecord[], name: string, type: string): LabDnsRecord[] | undefined {
    const out: LabDnsRecord[] = [];
    let current = normal(name);
    for (let hop = 0; hop < 8; hop++) {
        const here = records.filter((r) => r.name === current);
        // A name with no records but names below it exists (an empty non-terminal): NODATA.
        if (here.length === 0) return out.length > 0 || records.some((r) => r.name.endsWith(`.${current}`)) ? out : undefined;
        const cname = here.find((r) => r.type === "CNAME");
        if (!cname || type === "CNAME") return [...out, ...here.filter((r) => r.type === type)];
        out.push(cname);
        current = cname.data as string;
    }
    return out;
}

/**
 * The response to one query. `udp`: over UDP, an answer larger than the client can take (512
 * bytes, or its EDNS size) goes back empty with TC set, and the client asks again over TCP.
 */
export function answerQuery(query: dnsPacket.DecodedPacket, records: LabDnsRecord[], udp: boolean): Buffer {
    const question = query.questions?.[0];
    const opt = query.additionals?.find((a): a is dnsPacket.OptAnswer => a.type === "OPT");
    const edns: dnsPacket.Answer[] = opt ? [{ type: "OPT", name: ".", udpPayloadSize: EDNS_UDP_LIMIT, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
    const base = { type: "response" as const, id: query.id, questions: query.questions ?? [], additionals: edns };
    const rd = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | rd;
    if (!question || (question.class && question.class !== "IN")) return dnsPacket.encode({ ...base, flags: flags | RCODE.notImplemented });
    const found = lookup(records, question.name, question.type);
    const response: dnsPacket.Packet = { ...base, flags: flags | (found ? RCODE.noError : RCODE.nxDomain), answers: (found ?? []).map(toAnswer) };
    const encoded = dnsPacket.encode(response);
    const limit = opt ? Math.max(CLASSIC_UDP_LIMIT, Math.min(opt.udpPayloadSize, EDNS_UDP_LIMIT)) : CLASSIC_UDP_LIMIT;
    if (udp && encoded.length > limit) return dnsPacket.encode({ ...response, flags: (response.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, answers: [] });
    return encoded;
}
