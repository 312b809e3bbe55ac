// etcd admits only clients with a certificate from the stack's etcd CA: from a database member as
// an unprivileged user, from the witness (a host the user brings, often shared), and over the
// mesh, every write without one is refused at the TLS handshake, and the key file stays
// unreadable. A write with the node's own certificate goes through, so a refusal is etcd's and
// not a network that is down. Patroni's failover after it is db-primary-kill's to show.
import { DB_PORTS } from "../../../components/plan";
import { ETCD_TLS_FILES, ETCDCTL_TLS_FLAGS, etcdClientUrl } from "../../../components/render/etcd";
import { etcdctlArgs, etcdNodes } from "../etcd";
import { execInNode, NodeState } from "../realize";
import { waitHealthy } from "../health";
import { Drill, DrillResult, drillChecks } from "./types";

/** The key the attempts try to write; it must not exist afterwards. */
const PROBE_KEY = "/vps-ha/etcd-unauthenticated-drill";

/** What a command said, for the report: the line naming TLS's refusal when there is one, else its last. */
const said = (r: { stdout: string; stderr: string; code: number; timedOut: boolean }) => {
    const lines = (r.stderr.trim() || r.stdout.trim()).split("\n");
    const line = lines.find((l) => /tls:|certificate|alert|HTTPS server/i.test(l)) ?? lines.pop() ?? "";
    const why = /(remote error: tls: [a-z ]+|tls: [a-z ]+|alert [a-z ]+|Client sent an HTTP request to an HTTPS server)/i.exec(line)?.[1] ?? line;
    return `exit ${r.timedOut ? "timeout" : r.code}: ${why.slice(0, 200) || "(nothing)"}`;
};
/** argv run as `user` (runuser: Debian's nobody has no group of its own name), or as root. */
const as = (user: string | undefined, argv: string[]) => (user ? ["runuser", "-u", user, "--", ...argv] : argv);

/** etcdctl without any client certificate (the server's certificate not checked either: only the client's matters here). */
const anonymousPut = (endpoint: string) => ["etcdctl", `--endpoints=${endpoint}`, "--dial-timeout=2s", "--command-timeout=3s", "--insecure-transport=false", "--insecure-skip-tls-verify", "put", PROBE_KEY, "written-without-a-certificate"];
/** The gateway's put in plain JSON over TLS, with no client certificate (curl -k). */
const anonymousGatewayPut = (endpoint: string) => ["curl", "-sS", "-k", "-m", "5", "-X", "POST", `${endpoint}/v3/kv/put`, "-d", JSON.stringify({ key: Buffer.from(PROBE_KEY).toString("base64"), value: Buffer.from("x").toString("base64") })];
/** The same over plain http, which the client port does not speak. */
const plainHttpPut = (host: string) => ["curl", "-sS", "-m", "5", "-X", "POST", `http://${host}:${DB_PORTS.etcdClient}/v3/kv/put`, "-d", JSON.stringify({ key: Buffer.from(PROBE_KEY).toString("base64"), value: Buffer.from("x").toString("base64") })];

export const etcdUnauthenticated: Drill = {
    name: "etcd-unauthenticated",
    description: "write to etcd without a client certificate: as nobody on a database member, from the witness, over the mesh and on loopback; every attempt refused, the key file unreadable, the probe key never written",
    // The witness is the host most likely shared with others: the drill needs one to try from.
    needs: "witness",
    run: async (ctx) => {
        await waitHealthy(ctx.log, 90_000);
        const checks = drillChecks();
        const { notes, check } = checks;
        // The nodes whose etcd member runs (the witness among them).
        const voters = await etcdNodes();
        const member = voters.find((n) => n.role === "db");
        const witness = voters.find((n) => n.role === "witness");
        if (!member || !witness) throw new Error("etcd-unauthenticated needs a database member that runs etcd and a witness; the lab lacks one");
        const target = voters.find((n) => n !== member) ?? member;
        let attempts = 0;
        const refused = async (from: NodeState, user: string | undefined, what: string, argv: string[], refusal: RegExp) => {
            attempts += 1;
            const r = await execInNode(from.name, as(user, argv), { timeoutMs: 20_000, allowFail: true });
            // Refused: no answer from etcd's API (etcdctl's OK, the gateway's JSON header), and the
            // command failed for that reason (not missing, nor runuser's own error), or etcd's 400 to plain http.
            const out = r.stdout + r.stderr;
            const answered = /"header"\s*:/.test(r.stdout) || /^OK$/m.test(r.stdout);
            const ranAndFailed = r.code !== 0 && r.code !== 126 && r.code !== 127 && !/^runuser:/m.test(r.stderr);
            const ok = !answered && (ranAndFailed || refusal.test(out));
            check(ok, `${from.name} as ${user ?? "root"}: ${what}: refused (${said(r)})`);
        };
        // The TLS handshake's refusal (OpenSSL's words, Go's), or etcdctl giving up after it.
        const tlsRefusal = /certificate required|bad certificate|alert|handshake failed|context deadline exceeded|connection reset|^curl: \((35|52|55|56)\)/im;
        const httpRefusal = /HTTP request to an HTTPS server|Empty reply from server|connection reset/i;
        const sources: { node: NodeState; user?: string }[] = [{ node: member, user: "nobody" }];
        sources.push({ node: witness, user: "nobody" }, { node: witness });
        for (const { node, user } of sources) {
            const local = voters.includes(node);
            if (local) {
                await refused(node, user, `etcdctl put on loopback without a certificate`, anonymousPut(etcdClientUrl("127.0.0.1")), tlsRefusal);
                await refused(node, user, `the JSON gateway's put on loopback without a certificate`, anonymousGatewayPut(etcdClientUrl("127.0.0.1")), tlsRefusal);
                await refused(node, user, `a plain-http put on loopback`, plainHttpPut("127.0.0.1"), httpRefusal);
            }
            const remote = voters.find((v) => v !== node) ?? target;
            // The mesh path is up: this node's own certificate (as root) gets an answer from the same etcd.
            if (local) {
                const control = await execInNode(node.name, ["etcdctl", `--endpoints=${etcdClientUrl(remote.meshAddress)}`, ...ETCDCTL_TLS_FLAGS, "--dial-timeout=2s", "--command-timeout=3s", "endpoint", "health"], { timeoutMs: 15_000, allowFail: true });
                check(control.code === 0, `${node.name} as root with its certificate reaches ${remote.name}'s etcd over the mesh (${said(control)})`);
            }
            await refused(node, user, `etcdctl put to ${remote.name}'s etcd over the mesh without a certificate`, anonymousPut(etcdClientUrl(remote.meshAddress)), tlsRefusal);
            if (user) {
                attempts += 1;
                const r = await execInNode(node.name, as(user, ["cat", ETCD_TLS_FILES.key]), { timeoutMs: 5_000, allowFail: true });
                check(r.code !== 0 && /denied/i.test(r.stderr), `${node.name} as ${user}: reading ${ETCD_TLS_FILES.key} refused (${said(r)})`);
            }
        }
        // The same node's own certificate is let in (etcd up, the mesh fine), and no attempt wrote the probe key.
        const own = await execInNode(member.name, [...etcdctlArgs(["--dial-timeout=2s", "--command-timeout=3s", "get", "--prefix", "--keys-only", "/vps-ha/"])], { timeoutMs: 15_000, allowFail: true });
        check(own.code === 0 && own.stdout.includes("/vps-ha/"), `${member.name} as root with its etcd certificate reads Patroni's keys (${own.stdout.trim().split("\n").filter(Boolean).length} keys)`);
        const probe = await execInNode(member.name, [...etcdctlArgs(["--dial-timeout=2s", "--command-timeout=3s", "get", "--print-value-only", PROBE_KEY])], { timeoutMs: 15_000, allowFail: true });
        check(probe.code === 0 && probe.stdout.trim() === "", `the probe key ${PROBE_KEY} was never written (${probe.code === 0 ? probe.stdout.trim() || "absent" : said(probe)})`);
        notes.unshift(`${attempts} attempts without a certificate from ${sources.map((s) => `${s.node.name}${s.user ? ` as ${s.user}` : " as root"}`).join(", ")}`);
        const result: DrillResult = {
            drill: "etcd-unauthenticated",
            target: member.name,
            rtoSeconds: 0,
            rtoTargetSeconds: 0,
            recoverySeconds: 0,
            lostWrites: 0,
            failedRequests: 0,
            failedHttpRequests: null,
            splitBrain: false,
            passed: checks.ok,
            checksPassed: checks.ok,
            figures: { refusedAttempts: attempts },
            notes,
        };
        return result;
    },
};
