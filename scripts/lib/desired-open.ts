// The desired-state documents a program evaluation published, opened by the node's own reader
// (node-agent/vpsha/desired.py, run by the host's python3): what each node would apply. Each
// node's keys come from its user-data (its WireGuard private key, the verifying key in the
// agent's config), as on the node.
import { ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
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

// One request per line on stdin, one answer per line on stdout: the reader stays loaded across
// evaluations (starting python3 and importing it was a third of an evaluation's time).
const SERVE = `
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from vpsha import desired
for line in sys.stdin:
    req = json.loads(line)
    records = req["records"]
    try:
        out = {}
        for n in req["nodes"]:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(n["cfg"]["publicKey"]))
            own = X25519PrivateKey.from_private_bytes(base64.b64decode(n["privateKey"]))
            doc = desired.fetch_document(n["cfg"], key, own, lambda name: [records[name]] if name in records else [])[1]
            out[n["cfg"]["node"]] = doc
        print(json.dumps({"documents": out}), flush=True)
    except Exception as err:
        print(json.dumps({"error": "%s: %s" % (type(err).__name__, err)}), flush=True)
`;

interface Reader {
    child: ChildProcessWithoutNullStreams;
    waiting: ((line: string | undefined) => void)[];
    stderr: string;
}
let reader: Reader | undefined;

/** The reader process, started on first use; it holds the event loop only while an answer is awaited. */
function startReader(): Reader {
    const child = spawn("/usr/bin/python3", ["-c", SERVE], { env: { ...process.env, PYTHONPATH: NODE_AGENT } });
    const r: Reader = { child, waiting: [], stderr: "" };
    createInterface({ input: child.stdout }).on("line", (line) => r.waiting.shift()?.(line));
    child.stderr.on("data", (d: Buffer) => (r.stderr = (r.stderr + d.toString()).slice(-4000)));
    const gone = () => {
        if (reader === r) reader = undefined;
        for (const w of r.waiting.splice(0)) w(undefined);
    };
    child.on("exit", gone);
    child.on("error", (err) => {
        r.stderr += String(err);
        gone();
    });
    return r;
}

function hold(r: Reader, held: boolean): void {
    for (const h of [r.child, ...([r.child.stdin, r.child.stdout, r.child.stderr] as unknown as Socket[])]) {
        if (held) h.ref();
        else h.unref();
    }
}

interface ReaderKeys {
    cfg: { node: string; dnsName: string };
    privateKey: string | undefined;
}

/** Each user-data's reader config and key, by its text: evaluations repeat most nodes' user-data. */
const readerKeys = new Map<string, ReaderKeys | undefined>();

function readerKeysOf(userData: string): ReaderKeys | undefined {
    if (!readerKeys.has(userData)) {
        if (readerKeys.size >= 512) readerKeys.clear();
        const files = (parse(userData) as BootDoc).write_files ?? [];
        const cfgFile = files.find((f) => f.path === DESIRED_CONFIG);
        const wg = files.find((f) => f.path === `${WIREGUARD_DIR}/${MESH_INTERFACE}.conf`);
        readerKeys.set(userData, cfgFile && wg ? { cfg: JSON.parse(cfgFile.content), privateKey: /^PrivateKey\s*=\s*(\S+)$/m.exec(wg.content)?.[1] } : undefined);
    }
    return readerKeys.get(userData);
}

/** `records`: TXT texts by record name (one each). Returns each node's document, by node name. */
export async function openDesired(userData: Record<string, string>, records: Map<string, string>): Promise<Record<string, DesiredDocument>> {
    const nodes: (ReaderKeys & { name: string })[] = [];
    for (const [name, text] of Object.entries(userData)) {
        const keys = readerKeysOf(text);
        if (!keys || !records.has(`_desired.${keys.cfg.dnsName}`)) continue;
        nodes.push({ ...keys, name });
    }
    if (nodes.length === 0) return {};
    const r = (reader ??= startReader());
    hold(r, true);
    const line = await new Promise<string | undefined>((resolve) => {
        r.waiting.push(resolve);
        r.child.stdin.write(JSON.stringify({ nodes, records: Object.fromEntries(records) }) + "\n");
    });
    if (r.waiting.length === 0) hold(r, false);
    const answer = line === undefined ? { error: `the reader exited: ${r.stderr}` } : (JSON.parse(line) as { documents?: Record<string, DesiredDocument>; error?: string });
    if (!answer.documents) throw new Error(`opening the desired-state documents failed: ${answer.error}`);
    return answer.documents;
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
