// A host the user already runs Debian 13 on: the same cloud-config is handed to cloud-init over
// SSH (a NoCloud seed), so the host boots into the same role a rented server would. Its public
// firewall is the user's to keep; the host firewall in the cloud-config still closes everything
// the plan does not open.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { sshCatalog } from "./ssh-catalog";
import { ProviderAdapter, ProviderContext, ServerSpec } from "./types";
import { shellQuote } from "../render/shell";

const COMMAND = "command:remote:Command";
/** The bootstrap command of a host is named after its node with this suffix. */
export const BOOTSTRAP_SUFFIX = "-bootstrap";
const SEED = "/var/lib/cloud/seed/nocloud";

/**
 * Writes the cloud-config on stdin to the seed, readable by root alone (it holds the node's keys
 * and passwords): a directory of mode 0700, the file written under umask 077 (a file left by an
 * earlier bootstrap is removed first, so its mode does not carry over). cloud-init itself then
 * runs with the usual umask: the files it writes carry their own modes.
 */
export function seedScript(instanceId: string, seed = SEED): string {
    return [
        `install -d -m 0700 ${seed}`,
        `rm -f ${seed}/user-data`,
        `(umask 077 && cat > ${seed}/user-data)`,
        `printf 'instance-id: %s\\n' '${instanceId}' > ${seed}/meta-data`,
    ].join("\n");
}

/** Reads the cloud-config on stdin, seeds cloud-init with it and runs every stage once. */
export function bootstrapScript(instanceId: string): string {
    return [
        "set -eu",
        "export DEBIAN_FRONTEND=noninteractive",
        "command -v cloud-init >/dev/null || (apt-get update -q && apt-get install -y -q cloud-init)",
        seedScript(instanceId),
        "cloud-init clean --logs",
        "cloud-init init --local && cloud-init init && cloud-init modules --mode=config && cloud-init modules --mode=final",
    ].join("\n");
}

/**
 * cloud-init's instance id for a host: a new one (a new user-data) makes cloud-init run every
 * stage again, as a new server would. Letters, digits and '-' only, since it lands in meta-data.
 */
export function hostInstanceId(node: string, userData: string): string {
    return `vps-ha-${node}-${createHash("sha256").update(userData).digest("hex").slice(0, 12)}`;
}

function init(_ctx: ProviderContext) {
    return {
        createServer(spec: ServerSpec, parent: pulumi.Resource) {
            if (!spec.host) throw new pulumi.RunError(`node ${spec.name}: a host you bring needs an address`);
            const host = spec.host;
            const instanceId = pulumi.output(spec.userData).apply((u) => hostInstanceId(spec.name, u));
            new command.remote.Command(`${spec.name}${BOOTSTRAP_SUFFIX}`, {
                connection: { host: host.address, user: host.user, privateKey: host.privateKey },
                create: instanceId.apply((id) => `sudo sh -c ${shellQuote(bootstrapScript(id))}`),
                stdin: spec.userData,
                triggers: [instanceId],
            // A host is never deleted (the command has no delete step). It keeps the user data it was
            // set up with unless the program sets it up again (ServerLifecycle).
            }, {
                parent, additionalSecretOutputs: ["stdin"], ...(spec.after?.length ? { dependsOn: spec.after } : {}),
                ...(spec.lifecycle.keepUserData ? { ignoreChanges: ["create", "stdin", "triggers"] } : {}),
            });
            return { id: pulumi.output(host.address), publicIpv4: pulumi.output(host.address), publicIpv6: pulumi.output(undefined) };
        },
    };
}

export const sshAdapter: ProviderAdapter = {
    catalog: sshCatalog,
    init,
    mocks: {
        outputs(type, _name, inputs, publicIpv4) {
            if (type !== COMMAND) return undefined;
            publicIpv4(); // the host keeps its own address; the lab still gives it one of its own
            return { ...inputs, stdout: "", stderr: "" };
        },
        userData(type, inputs) {
            return type === COMMAND ? (inputs.stdin as string | undefined) : undefined;
        },
    },
};
