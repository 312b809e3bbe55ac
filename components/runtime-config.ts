// The raw config Pulumi hands the program: every key's value as text, and which keys the stack
// file holds as secrets. Read once, then validated by ./config.ts.
import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";
import { OFFLINE_ENV, RawConfig } from "./config";

// Pulumi keeps the list of secret keys beside the config; `isConfigSecret` reads it but is
// marked internal in the typings, so it is looked up by name.
const isConfigSecret = (runtimeConfig as unknown as { isConfigSecret?: (key: string) => boolean }).isConfigSecret;

export function readRawConfig(): RawConfig {
    const values = pulumi.runtime.allConfig();
    const secretKeys = new Set(Object.keys(values).filter((k) => isConfigSecret?.(k) ?? false));
    return { values, secretKeys, env: process.env, offline: process.env[OFFLINE_ENV] === "1" };
}
