// The lab's Debian 13 root filesystem, holding every package the program's cloud-configs name:
// tests run the nodes' real daemons and validators from it, so what passes here is what the
// nodes run. Built once and cached by the lab (scripts/lab/rootfs.ts).
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { packagesOf } from "../../scripts/lab/cloudinit";
import { ensureRootfs } from "../../scripts/lab/rootfs";
import { Evaluation } from "../../scripts/lib/mock-program";
import { run } from "./tools";

export async function labRootfs(e: Evaluation): Promise<string> {
    // What the nodes end up holding: their desired state brings most packages.
    const nodes = Object.entries(e.config).map(([name, userData]) => ({ name, userData }));
    return ensureRootfs(packagesOf(nodes), (m) => console.log(`      ${m}`));
}

/**
 * Runs `argv` chrooted in the root filesystem with `files` (absolute paths inside the chroot)
 * laid over it in a private mount namespace, so the cached root filesystem is never changed.
 */
export function runInRootfs(rootfs: string, files: Record<string, string>, argv: string[]): { status: number; stdout: string; stderr: string } {
    const stage = mkdtempSync(join(tmpdir(), "vps-ha-rootfs-run-"));
    const binds: string[] = [];
    for (const [path, content] of Object.entries(files)) {
        const dir = dirname(path);
        const staged = join(stage, dir);
        mkdirSync(staged, { recursive: true });
        writeFileSync(join(stage, path), content, { mode: 0o600 });
        if (!binds.includes(dir)) binds.push(dir);
    }
    const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
    const script = [
        ...binds.map((d) => `mkdir -p ${q(join(rootfs, d))} 2>/dev/null; mount --bind ${q(join(stage, d))} ${q(join(rootfs, d))}`),
        `exec chroot ${q(rootfs)} ${argv.map(q).join(" ")}`,
    ].join(" && ");
    return run("unshare", ["--mount", "--propagation", "private", "sh", "-c", script]);
}
