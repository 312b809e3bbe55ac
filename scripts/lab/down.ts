// `npx tsx scripts/lab/down.ts [--all] [--force]`: take down whatever lab is up, also after a
// crash. --all also removes vh-* namespaces the lab has no record of; --force proceeds even
// while the process that realized the lab is still alive.
import { rmSync } from "node:fs";
import { down } from "./cleanup";
import { lockOwner, releaseLock } from "./lock";
import { LAB_LOCK } from "./paths";
import { requireRoot } from "./preflight";
import { isAlive } from "./procs";

const log = (m: string) => console.log(m);
const args = process.argv.slice(2);

async function main(): Promise<void> {
    requireRoot();
    const owner = lockOwner(LAB_LOCK);
    if (owner && owner !== process.pid && isAlive(owner) && !args.includes("--force")) {
        throw new Error(`lab: PID ${owner} is running the lab; stop it, or pass --force to take its lab down anyway`);
    }
    await down(log, { all: args.includes("--all") });
    if (owner && !isAlive(owner)) rmSync(LAB_LOCK, { force: true });
    releaseLock(LAB_LOCK);
}

main().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
});
