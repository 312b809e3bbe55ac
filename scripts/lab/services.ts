// Services in a node without systemd. The node gets systemctl-shim.py as its systemctl
// (and journalctl); the shim runs each unit under a detached supervisor and records the
// PIDs in the node's /run/lab-systemctl, which the lab reads from the host.
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, chmodSync } from "node:fs";
import { dirname, join } from "node:path";
import { isAlive } from "./procs";

const SHIM_SOURCE = join(__dirname, "systemctl-shim.py");
const SHIM_IN_NODE = "/usr/local/lib/vps-ha-lab/systemctl";
/** Where the shim keeps unit state, relative to the node root. */
export const UNIT_STATE_DIR = "run/lab-systemctl";

/** Names that must resolve to the shim, whichever PATH a caller uses. */
const SHIM_LINKS = ["/usr/local/sbin/systemctl", "/usr/local/bin/journalctl", "/usr/bin/systemctl", "/usr/bin/journalctl"];

export interface UnitStatus {
    unit: string;
    state: string;
    sub?: string;
    supervisor?: number | null;
    main?: number | null;
    restarts?: number;
    result?: string;
}

/** Copy the shim into the node's overlay; a real systemctl from a package is shadowed (copy-up). */
export function installShim(merged: string): void {
    const target = join(merged, SHIM_IN_NODE);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(SHIM_SOURCE, target);
    chmodSync(target, 0o755);
    for (const link of SHIM_LINKS) {
        const p = join(merged, link);
        mkdirSync(dirname(p), { recursive: true });
        if (exists(p)) rmSync(p);
        symlinkSync(SHIM_IN_NODE, p);
    }
}

function exists(p: string): boolean {
    try {
        lstatSync(p);
        return true;
    } catch {
        return false;
    }
}

/** Units the shim has state for, as the host sees them. */
export function unitStatuses(merged: string): UnitStatus[] {
    const dir = join(merged, UNIT_STATE_DIR);
    if (!existsSync(dir)) return [];
    const out: UnitStatus[] = [];
    for (const f of readdirSync(dir)) {
        if (!f.endsWith(".json")) continue;
        try {
            const u = JSON.parse(readFileSync(join(dir, f), "utf8")) as UnitStatus;
            // A supervisor killed under it (node-kill) leaves "active" behind; say what systemctl would.
            if (["active", "activating", "deactivating", "reloading"].includes(u.state) && u.supervisor && !isAlive(u.supervisor)) {
                u.state = "failed";
            }
            out.push(u);
        } catch {
            // being rewritten (the shim renames atomically, so this is a race on a removed file)
        }
    }
    return out;
}

/** Supervisor and main PIDs the shim recorded (may include dead ones; callers filter). */
export function unitPids(merged: string): number[] {
    const pids: number[] = [];
    for (const u of unitStatuses(merged)) {
        if (u.supervisor) pids.push(u.supervisor);
        if (u.main) pids.push(u.main);
    }
    return pids;
}

/** The shim command line inside the node, e.g. ["systemctl", "__boot"]. */
export const SYSTEMCTL = "/usr/local/sbin/systemctl";
