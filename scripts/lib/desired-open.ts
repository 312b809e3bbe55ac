// The desired-state documents a program evaluation published, opened by the node's own reader
// (node-agent/vpsha/desired.py, run by the host's python3): what each node would apply. Each
// node's keys come from its user-data (its WireGuard private key, the verifying key in the
// agent's config), as on the node.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { DesiredDocument } from "../../components/desired-state-records";
import { DESIRED_CONFIG } from "../../components/render/desired-agent";
import { MESH_INTERFACE, WIREGUARD_DIR } from "../../components/render/wireguard";

const NODE_AGENT = join(__dirname, "..", "..", "node-agent");

export interface BootFile {
    path: string;
    content: string;
    permissions?: string;
    owner?: string;
    defer?: boolean;
}

interface BootDoc {
    write_files?: BootFile[];
    packages?: string[];
    runcmd?: string[][];
    [k: string]: unknown;
}

const OPEN = `
import json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
import base64
from vpsha import desired
out = {}
for n in json.load(sys.stdin):
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(n["cfg"]["publicKey"]))
    own = X25519PrivateKey.from_private_bytes(base64.b64decode(n["privateKey"]))
    out[n["cfg"]["node"]] = desired.verify_records(n["cfg"], key, own, n["head"], n["chunks"])[1]
json.dump(out, sys.stdout)
`;

/** `records`: TXT texts by record name (one each). Returns each node's document, by node name. */
export function openDesired(userData: Record<string, string>, records: Map<string, string>): Record<string, DesiredDocument> {
    const nodes = [];
    for (const [name, text] of Object.entries(userData)) {
        const files = (parse(text) as BootDoc).write_files ?? [];
        const cfgFile = files.find((f) => f.path === DESIRED_CONFIG);
        const wg = files.find((f) => f.path === `${WIREGUARD_DIR}/${MESH_INTERFACE}.conf`);
        if (!cfgFile || !wg) continue;
        const cfg = JSON.parse(cfgFile.content) as { node: string; dnsName: string };
        const head = records.get(`_desired.${cfg.dnsName}`);
        if (head === undefined) continue;
        const n = Number(/ chunks=(\d+)/.exec(head)?.[1] ?? 0);
        const chunks = Array.from({ length: n }, (_, i) => records.get(`_desired-${i + 1}.${cfg.dnsName}`) ?? "");
        const privateKey = /^PrivateKey\s*=\s*(\S+)$/m.exec(wg.content)?.[1];
        nodes.push({ cfg, privateKey, head, chunks, name });
    }
    if (nodes.length === 0) return {};
    const r = spawnSync("/usr/bin/python3", ["-c", OPEN], { input: JSON.stringify(nodes), encoding: "utf8", env: { ...process.env, PYTHONPATH: NODE_AGENT }, maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`opening the desired-state documents failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, DesiredDocument>;
}

/**
 * Everything a node ends up holding, in the user-data's form: the bootstrap's files with the
 * document's over them, both's packages, the bootstrap's commands then the document's setup.
 */
export function wholeNode(userData: string, doc: DesiredDocument | undefined): string {
    if (!doc) return userData;
    const boot = parse(userData) as BootDoc;
    const files = new Map((boot.write_files ?? []).map((f) => [f.path, f]));
    for (const f of doc.files) files.set(f.path, { path: f.path, content: f.content, permissions: f.mode, owner: f.owner });
    const whole: BootDoc = {
        ...boot,
        packages: [...new Set([...(boot.packages ?? []), ...(doc.packages ?? [])])].sort(),
        write_files: [...files.values()],
        runcmd: [...(boot.runcmd ?? []), ...(doc.setup ?? [])],
    };
    return "#cloud-config\n" + stringify(whole, { lineWidth: 0 });
}
