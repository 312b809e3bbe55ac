// Off-site backups in the lab: the S3 endpoint the nodes' pgBackRest uses (Cloudflare R2 by
// default) is played by s3rver on the lab bridge, under the very host name the nodes were
// given, with a certificate from a lab CA the nodes trust. Nothing in the nodes' config changes.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { PGBACKREST_CONF } from "../../components/render/pgbackrest";
import { answers, Log, run, sleep } from "./exec";
import { BRIDGE_ADDRESS, STATE_DIR } from "./paths";
import type { LabNodeSpec } from "./realize";
import { updateState } from "./state";
import { parseJsonLines } from "./load/json-lines";
import { credentialKeys, S3_KEY_USE, S3Key } from "./s3-auth";

export interface S3Endpoint {
    host: string;
    port: number;
    bucket: string;
    accessKeyId: string;
    secretAccessKey: string;
}

/** The endpoint and bucket in the database nodes' pgbackrest.conf, if backups are on. */
export function s3EndpointOf(specs: LabNodeSpec[]): S3Endpoint | undefined {
    for (const s of specs) {
        const files = (parse(s.config ?? s.userData).write_files ?? []) as { path: string; content: string }[];
        const conf = files.find((f) => f.path === PGBACKREST_CONF)?.content;
        if (!conf) continue;
        const get = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(conf)?.[1];
        const host = get("repo1-s3-endpoint");
        const bucket = get("repo1-s3-bucket");
        const accessKeyId = get("repo1-s3-key");
        const secretAccessKey = get("repo1-s3-key-secret");
        if (host && bucket && accessKeyId && secretAccessKey) return { host, bucket, accessKeyId, secretAccessKey, port: Number(get("repo1-storage-port") ?? 443) };
    }
    return undefined;
}

export interface LabTls {
    caCertPem: string;
    keyFile: string;
    certFile: string;
}

/** A throwaway CA (valid 2 days) and one server certificate for every name in `hosts`, made with openssl. */
export async function labTls(dir: string, hosts: string[]): Promise<LabTls> {
    const names = hosts.filter((h) => /^[A-Za-z0-9.-]+$/.test(h));
    if (names.length === 0 || names.length !== hosts.length) throw new Error(`lab TLS: ${JSON.stringify(hosts)} must be one or more host names`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const f = (n: string) => join(dir, n);
    const openssl = (args: string[]) => run(["openssl", ...args], { timeoutMs: 30_000 });
    await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "2", "-subj", "/CN=vps-ha lab CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", `/CN=${names[0]}`]);
    writeFileSync(f("server.ext"), `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}\nextendedKeyUsage=serverAuth\n`);
    await openssl(["x509", "-req", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f("server.crt"), "-days", "2", "-extfile", f("server.ext")]);
    return { caCertPem: readFileSync(f("ca.crt"), "utf8"), keyFile: f("server.key"), certFile: f("server.crt") };
}

const s3Dir = () => join(STATE_DIR, "s3");

/** The keys the stand-in admits from now on (replaced whole: it reads the file again when it changes). */
export function setS3Keys(keys: S3Key[]): void {
    const file = join(s3Dir(), "credentials.json");
    writeFileSync(`${file}.tmp`, JSON.stringify({ keys }), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
}

/** The keys the stand-in admits now. */
export function s3Keys(): S3Key[] {
    return credentialKeys(JSON.parse(readFileSync(join(s3Dir(), "credentials.json"), "utf8")));
}

/** Each request the stand-in admitted: when (ms since the epoch) and with which access key. */
export function s3KeyUse(): { at: number; key?: string }[] {
    const file = join(s3Dir(), S3_KEY_USE);
    return existsSync(file) ? parseJsonLines<{ at: number; key?: string }>(readFileSync(file, "utf8")) : [];
}

/** Starts the S3 endpoint on the bridge address, records its PID for `down`, waits for it. */
export async function startS3(endpoint: S3Endpoint, tls: LabTls, log: Log): Promise<void> {
    const dir = s3Dir();
    mkdirSync(join(dir, "data"), { recursive: true });
    const credentials = join(dir, "credentials.json");
    writeFileSync(credentials, JSON.stringify({ accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey }), { mode: 0o600 });
    const out = openSync(join(dir, "s3.log"), "a");
    const tsx = join(__dirname, "../../node_modules/tsx/dist/cli.mjs");
    const child = spawn(process.execPath, [tsx, join(__dirname, "s3-server.ts"), "--address", BRIDGE_ADDRESS, "--port", String(endpoint.port), "--dir", join(dir, "data"),
        "--key", tls.keyFile, "--cert", tls.certFile, "--bucket", endpoint.bucket, "--credentials", credentials], { detached: true, stdio: ["ignore", out, out] });
    closeSync(out);
    if (!child.pid) throw new Error("lab: could not start the S3 endpoint");
    const pid = child.pid;
    child.unref();
    updateState((s) => (s.services = [...(s.services ?? []), { name: "s3 endpoint", pid }]));
    for (let i = 0; i < 100; i++) {
        if (await answers(BRIDGE_ADDRESS, endpoint.port)) {
            log(`lab: S3 endpoint for ${endpoint.host} (bucket ${endpoint.bucket}) on ${BRIDGE_ADDRESS}:${endpoint.port}`);
            return;
        }
        await sleep(100);
    }
    throw new Error(`lab: the S3 endpoint did not listen on ${BRIDGE_ADDRESS}:${endpoint.port} within 10 s (see ${join(dir, "s3.log")})`);
}

