// The peer watch, run for real: an HAProxy node's rendered agent, config and firewall in a
// throwaway namespace (vhtest-*) over the lab's Debian 13 root filesystem, with a database member
// beside it on a link of its own. When the member stops answering, new connections to it must be
// refused at once (not wait out a timeout), and admitted again when it answers; a watch that
// itself stood still must not shut anyone out.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { DIRECTORY_CACHE } from "../components/render/directory-agent";
import { NFTABLES_FILE, PEER_GONE_SET } from "../components/render/nftables";
import { PEER_WATCH, PEER_WATCH_CONFIG, PeerWatchConfig } from "../components/render/peer-watch";
import { directoryCache, evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { requireTools } from "./helpers/tools";

const WATCHER = "lb-1";
const PEER = "db-1";
const PORT = 8008;

function filesOf(userData: string): { path: string; content: string; permissions: string }[] {
    return parse(userData).write_files as { path: string; content: string; permissions: string }[];
}

describe("peer watch, run for real (raw ICMP, nftables) @rootfs", function () {
    this.timeout(300000);
    let sb: Sandbox | undefined;
    let cfg: PeerWatchConfig;
    let peerAddress = "";
    let watcherAddress = "";
    const dir = mkdtempSync(join(tmpdir(), "vps-ha-peer-watch-"));
    const logFile = join(dir, "peer-watch.log");
    let agentPid = 0;

    const exec = (node: string, argv: string[]) => {
        const r = (sb as Sandbox).exec(node, argv, { timeoutMs: 30000 });
        assert.equal(r.status, 0, `${argv.join(" ")}: ${r.stdout}${r.stderr}`);
        return r.stdout;
    };
    const gone = (): string[] => {
        const listed = JSON.parse(exec(WATCHER, ["nft", "-j", "list", "set", "inet", "vps_ha", PEER_GONE_SET])) as { nftables: { set?: { elem?: string[] } }[] };
        return listed.nftables.find((x) => x.set)?.set?.elem ?? [];
    };
    /** A TCP connect from the watcher to the peer: how it ended and how long it took. */
    const connect = () => {
        const script = `import socket,time\nt=time.monotonic()\ns=socket.socket()\ns.settimeout(3)\ntry:\n  s.connect(("${peerAddress}",${PORT})); r="connected"\nexcept Exception as e: r=type(e).__name__\nprint(r, round(time.monotonic()-t,3))`;
        const [outcome, seconds] = exec(WATCHER, ["python3", "-c", script]).trim().split(" ");
        return { outcome, seconds: Number(seconds) };
    };
    const peerLink = (state: "up" | "down") => {
        // The peer's end of the link between the two: the watcher's packets to it go nowhere.
        const ip = (...args: string[]) => {
            const r = spawnSync("ip", ["-n", (sb as Sandbox).netns(PEER), ...args], { encoding: "utf8" });
            assert.equal(r.status, 0, r.stderr);
        };
        ip("link", "set", "vd10", state);
        // A link that went down lost its routes: the way back to the watcher, as the sandbox made it.
        if (state === "up") ip("route", "replace", `${watcherAddress}/32`, "dev", "vd10", "src", peerAddress);
    };
    const waitFor = async (what: string, done: () => boolean, seconds: number): Promise<number> => {
        const t = Date.now();
        for (let i = 0; i < seconds * 5; i++) {
            if (done()) return (Date.now() - t) / 1000;
            await new Promise((r) => setTimeout(r, 200));
        }
        assert.fail(`${what} within ${seconds} s; the watch said:\n${readFileSync(logFile, "utf8")}`);
    };

    before(async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot", "ip", "nsenter"], true);
        const prod = await evaluate();
        const rootfs = await labRootfs(prod);
        const nodes = prod.outputs.nodes as { name: string; meshAddress: string }[];
        const address = (name: string) => nodes.find((n) => n.name === name)?.meshAddress as string;
        peerAddress = address(PEER);
        watcherAddress = address(WATCHER);
        sb = await Sandbox.open(`vhtest-pw${process.pid}`, rootfs, [{ name: WATCHER, address: watcherAddress }, { name: PEER, address: peerAddress }]);
        for (const f of filesOf(prod.config[WATCHER])) sb.write(WATCHER, f.path, f.content, f.permissions);
        cfg = JSON.parse(exec(WATCHER, ["cat", PEER_WATCH_CONFIG])) as PeerWatchConfig;
        sb.write(WATCHER, DIRECTORY_CACHE, directoryCache(prod, [WATCHER, PEER]));
        exec(WATCHER, ["nft", "-f", NFTABLES_FILE]);
        // Something for the watcher to connect to on the peer (its own firewall is not loaded).
        sb.start(PEER, ["python3", "-m", "http.server", "--bind", peerAddress, String(PORT)], join(dir, "peer.log"));
        const agent = sb.start(WATCHER, [PEER_WATCH], logFile);
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(agent.exitCode, null, `the watch exited: ${readFileSync(logFile, "utf8")}`);
        agentPid = sb.daemonPid(agent);
    });

    after(async () => {
        await sb?.close();
        rmSync(dir, { recursive: true, force: true });
    });

    it("leaves a peer that answers alone", async () => {
        await waitFor("the peer accepts connections", () => connect().outcome === "connected", 10);
        await new Promise((r) => setTimeout(r, (cfg.goneAfterSeconds + 1) * 1000));
        assert.deepEqual(gone(), []);
        assert.equal(connect().outcome, "connected");
    });

    it("refuses connections to a peer that stopped answering, at once, and admits it again when it answers", async () => {
        peerLink("down");
        const silent = connect();
        assert.equal(silent.outcome, "TimeoutError", "before the watch acts, a connect to a silent peer waits out its timeout");
        const took = await waitFor("the silent peer is in the gone set", () => gone().includes(peerAddress), cfg.goneAfterSeconds + 6);
        const refused = connect();
        assert.equal(refused.outcome, "ConnectionRefusedError");
        assert.ok(refused.seconds < 0.5, `refused after ${refused.seconds} s`);
        peerLink("up");
        await waitFor("the peer is out of the gone set once it answers", () => gone().length === 0, 2 * cfg.probeEverySeconds + 5);
        assert.equal(connect().outcome, "connected");
        const log = readFileSync(logFile, "utf8");
        assert.match(log, new RegExp(`${peerAddress.replace(/\./g, "\\.")} \\(${PEER}\\) has not answered for ${cfg.goneAfterSeconds} s`));
        assert.match(log, new RegExp(`\\(${PEER}\\) answers again`));
        console.log(`      gone set after ${took.toFixed(1)} s more of silence (the connect above waited 3 s)`);
    });

    it("puts the set back when the firewall is reloaded, and gives every peer a new grace period after standing still itself", async () => {
        peerLink("down");
        await waitFor("the silent peer is in the gone set", () => gone().includes(peerAddress), cfg.goneAfterSeconds + 6);
        exec(WATCHER, ["nft", "-f", NFTABLES_FILE]); // a reload starts with empty sets
        assert.deepEqual(gone(), []);
        await waitFor("the set is rewritten", () => gone().includes(peerAddress), cfg.reapplySeconds + 3);
        peerLink("up");
        await waitFor("the peer is back", () => gone().length === 0, 2 * cfg.probeEverySeconds + 5);
        // Stopped longer than a peer's grace, the watch heard nothing: that is its own silence.
        const before = readFileSync(logFile, "utf8").length;
        process.kill(agentPid, "SIGSTOP");
        await new Promise((r) => setTimeout(r, (cfg.goneAfterSeconds + 2) * 1000));
        process.kill(agentPid, "SIGCONT");
        await new Promise((r) => setTimeout(r, 3 * cfg.probeEverySeconds * 1000));
        const after = readFileSync(logFile, "utf8").slice(before);
        assert.match(after, /stood still/);
        assert.doesNotMatch(after, /has not answered/);
        assert.deepEqual(gone(), []);
    });
});
