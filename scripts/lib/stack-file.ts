// Reads a Pulumi stack file (Pulumi.<stack>.yaml) into the raw key/value form Pulumi hands a
// program. `secure:` values count as set but stay unread: the offline plan never needs their
// plaintext, so it runs with no passphrase and no cloud account.
import { readFileSync } from "node:fs";
import { parse } from "yaml";

export const SECRET_PLACEHOLDER = "[secret]";

export interface StackFile {
    values: Record<string, string>;
    secretKeys: string[];
}

export function parseStackFile(text: string, source: string): StackFile {
    let doc: unknown;
    try {
        doc = parse(text);
    } catch (e) {
        throw new StackFileError(`${source} is not valid YAML: ${(e as Error).message}`);
    }
    const config = (doc as { config?: unknown } | null)?.config ?? {};
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
        throw new StackFileError(`${source}: "config" must be a mapping of keys to values`);
    }
    const values: Record<string, string> = {};
    const secretKeys: string[] = [];
    for (const [key, value] of Object.entries(config)) {
        if (isSecure(value)) {
            values[key] = SECRET_PLACEHOLDER;
            secretKeys.push(key);
        } else if (typeof value === "string") {
            values[key] = value;
        } else {
            // A structured value with a secure value inside (pulumi config set --path --secret):
            // Pulumi hands the whole key to the program as a secret.
            let nested = false;
            values[key] = JSON.stringify(value, (_k, v: unknown) => (isSecure(v) ? ((nested = true), SECRET_PLACEHOLDER) : v));
            if (nested) secretKeys.push(key);
        }
    }
    return { values, secretKeys };
}

export function readStackFile(path: string): StackFile {
    let text: string;
    try {
        text = readFileSync(path, "utf8");
    } catch (e) {
        throw new StackFileError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return parseStackFile(text, path);
}

function isSecure(value: unknown): boolean {
    return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && "secure" in value;
}

/** The stack a file is for, from its name (Pulumi.<stack>.yaml), if it follows that pattern. */
export function stackNameOf(file: string): string | undefined {
    return /Pulumi\.([^/\\]+)\.ya?ml$/.exec(file)?.[1];
}

export class StackFileError extends Error {}
