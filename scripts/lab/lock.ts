// Lock files holding the owner's PID. Two lab runs must not build the same root filesystem at
// once, nor realize (and so tear down) each other's lab; a crashed run leaves a lock whose PID
// is dead, which the next run takes over.
import { openSync, writeSync, closeSync, readFileSync, unlinkSync } from "node:fs";
import { Log, sleep, elapsed } from "./exec";
import { isAlive } from "./procs";

export function lockOwner(path: string): number | undefined {
    try {
        const n = Number(readFileSync(path, "utf8").trim());
        return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
        return undefined;
    }
}

/** Take the lock, waiting (bounded) while a live process holds it. Re-entrant for our PID. */
export async function acquireLock(path: string, what: string, log: Log, timeoutMs: number): Promise<void> {
    const started = Date.now();
    let lastNote = 0;
    for (;;) {
        try {
            const fd = openSync(path, "wx", 0o600);
            writeSync(fd, String(process.pid));
            closeSync(fd);
            return;
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        }
        const owner = lockOwner(path);
        if (owner === process.pid) return;
        if (owner === undefined || !isAlive(owner)) {
            log(`${what}: removing stale lock ${path} (owner ${owner ?? "unknown"} is gone)`);
            safeUnlink(path);
            continue;
        }
        if (Date.now() - started > timeoutMs) {
            throw new Error(`lab: gave up after ${elapsed(started)} waiting for the ${what} lock ${path}, held by PID ${owner}`);
        }
        if (Date.now() - lastNote > 15_000) {
            log(`${what}: waiting for PID ${owner} to release ${path} (${elapsed(started)})`);
            lastNote = Date.now();
        }
        await sleep(1000);
    }
}

export function releaseLock(path: string): void {
    if (lockOwner(path) === process.pid) safeUnlink(path);
}

export async function withLock<T>(path: string, what: string, log: Log, timeoutMs: number, body: () => Promise<T>): Promise<T> {
    await acquireLock(path, what, log, timeoutMs);
    try {
        return await body();
    } finally {
        releaseLock(path);
    }
}

function safeUnlink(path: string): void {
    try {
        unlinkSync(path);
    } catch {
        // already gone
    }
}
