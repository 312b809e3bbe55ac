// A small command-line parser: `--name value`, `--name=value`, `--flag`, and positionals.
export class UsageError extends Error {}

export interface ParsedArgs {
    values: Record<string, string | undefined>;
    flags: Record<string, boolean>;
    positional: string[];
}

export function parseArgs(argv: string[], spec: { values?: string[]; flags?: string[] }): ParsedArgs {
    const out: ParsedArgs = { values: {}, flags: {}, positional: [] };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (!arg.startsWith("--")) {
            out.positional.push(arg);
            continue;
        }
        const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
        const next = argv[i + 1];
        // A name that is both a flag and an option takes a value only when one follows.
        const takesValue = spec.values?.includes(name) && (inline !== undefined || (next !== undefined && !next.startsWith("--")));
        if (spec.flags?.includes(name) && !takesValue) out.flags[name] = true;
        else if (spec.values?.includes(name)) {
            const value = inline ?? argv[++i];
            if (value === undefined || value.startsWith("--")) throw new UsageError(`--${name} needs a value`);
            out.values[name] = value;
        } else throw new UsageError(`unknown option --${name}`);
    }
    return out;
}
