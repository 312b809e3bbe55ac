// Test stacks: the shipped prod stack file, as the program would receive it, with edits.
import { join } from "node:path";
import { RawConfig } from "../../components/config";
import { readStackFile, SECRET_PLACEHOLDER, StackFile } from "../../scripts/lib/stack-file";

export const ROOT = join(__dirname, "..", "..");

export function prodStack(): StackFile {
    return withSecretsSet(shippedProdStack());
}

/** Pulumi.prod.yaml as shipped, read once per process: no secret in it yet. Each caller gets its own copy. */
let shipped: StackFile | undefined;
export function shippedProdStack(): StackFile {
    shipped ??= readStackFile(join(ROOT, "Pulumi.prod.yaml"));
    return structuredClone(shipped);
}

/** A stack file after the README's `pulumi config set --secret` steps: every secret set (values unread, as in a stack file). */
export function withSecretsSet(file: StackFile): StackFile {
    const values = { ...file.values };
    const secretKeys = new Set(file.secretKeys);
    for (const key of ["linode:token", "hcloud:token", "cloudflare:apiToken"]) {
        values[key] ??= SECRET_PLACEHOLDER;
        secretKeys.add(key);
    }
    const database = values["vps-ha:database"] && JSON.parse(values["vps-ha:database"]);
    if (database?.backups) {
        database.backups.accessKeyId ??= SECRET_PLACEHOLDER;
        database.backups.secretAccessKey ??= SECRET_PLACEHOLDER;
        values["vps-ha:database"] = JSON.stringify(database);
        secretKeys.add("vps-ha:database");
    }
    return { values, secretKeys: [...secretKeys] };
}

/** The prod stack with `vps-ha:<key>` values replaced (objects are JSON-encoded as Pulumi does). */
export function withConfig(edits: Record<string, unknown>, base: StackFile = prodStack()): StackFile {
    const values = { ...base.values };
    for (const [key, value] of Object.entries(edits)) {
        const full = key.includes(":") ? key : `vps-ha:${key}`;
        if (value === undefined) delete values[full];
        else values[full] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return { values, secretKeys: [...base.secretKeys] };
}

export function raw(file: StackFile, env: Record<string, string> = {}): RawConfig {
    return { values: file.values, secretKeys: new Set(file.secretKeys), env };
}

type NodeEntry = { name: string; provider: string; region: string; size?: string; [k: string]: unknown };

/** The prod stack's node lists, for tests that edit them. */
export function prodNodes(): Record<"app" | "haproxy" | "db" | "witness", NodeEntry[]> {
    return JSON.parse(prodStack().values["vps-ha:nodes"]);
}
