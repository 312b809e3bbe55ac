// The release: the signed record that says which images run on the app nodes and which one each
// HAProxy backend serves, and the gate that makes `pulumi up` wait until every app node answers
// healthy in it. The record changes at run time what the agents converge (node-agent/vpsha/directory.py);
// no server's user-data names an image, so a release replaces nothing.
import * as command from "@pulumi/command";
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { appRelease, frontDoorHostnames } from "./config";
import { directoryReleaseName, ReleaseRecord, signReleaseRecord, txtContent } from "./directory-records";
import { NODE_RECORD_TTL } from "./node-records";
import { nodesDomain, StackPlan } from "./plan";
import { READY_PATH } from "./render/haproxy";
import { GateCheck, renderReleaseGate } from "./render/release-gate";
import { releasePorts } from "./release";

/** Reads in a row the gate wants, 2 s apart: longer than HAProxy takes to mark a dead server down. */
const GATE_STABLE_ROUNDS = 5;
const GATE_EVERY_SECONDS = 2;

export interface AppReleaseArgs {
    plan: StackPlan;
    /** The mesh directory's signing key (secret, PEM). */
    signingKey: pulumi.Input<string>;
    /** What must exist before the gate can pass: the servers, the front door. */
    gateAfter: pulumi.Input<pulumi.Resource>[];
}

export function releaseRecord(plan: StackPlan): ReleaseRecord {
    const p = releasePorts(plan.config.app.port, appRelease(plan.config));
    return { active: p.active.image, activePort: p.active.port, ...(p.candidate ? { candidate: p.candidate.image, candidatePort: p.candidate.port } : {}) };
}

/** The checks: the app's hostname at the active port, the candidate's at the candidate port. */
export function gateChecks(plan: StackPlan): GateCheck[] {
    const r = releaseRecord(plan);
    const names = frontDoorHostnames(plan.config);
    const appNodes = plan.nodes.filter((n) => n.role === "app").length;
    return [
        { url: `https://${names.app}${READY_PATH}`, expect: `${appNodes} ${r.activePort}` },
        ...(r.candidatePort ? [{ url: `https://${names.candidate}${READY_PATH}`, expect: `${appNodes} ${r.candidatePort}` }] : []),
    ];
}

export function releaseGateScript(plan: StackPlan): string {
    return renderReleaseGate({ checks: gateChecks(plan), timeoutSeconds: appRelease(plan.config).gateTimeoutSeconds, everySeconds: GATE_EVERY_SECONDS, stableRounds: GATE_STABLE_ROUNDS });
}

export class AppRelease extends pulumi.ComponentResource {
    /** The release gate: what must pass before the stack counts as serving the release. */
    readonly gate: command.local.Command;

    constructor(name: string, args: AppReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:AppRelease", name, {}, opts);
        const { plan } = args;
        const owner = directoryReleaseName(nodesDomain(plan.config));
        const record = releaseRecord(plan);
        const content = pulumi.output(args.signingKey).apply((pem) => txtContent(signReleaseRecord(owner, record, pem)));
        // DNS-only, the directory's TTL: every agent has it within a TTL and one round.
        const txt = new cloudflare.DnsRecord(`${name}-record`, {
            zoneId: plan.config.cloudflare.zoneId, name: owner, type: "TXT", content: pulumi.unsecret(content), ttl: NODE_RECORD_TTL, proxied: false,
        }, { parent: this });
        // Runs again whenever the release changes (triggers), after the record is published.
        this.gate = new command.local.Command(`${name}-gate`, {
            create: releaseGateScript(plan),
            triggers: [JSON.stringify(record)],
        }, { parent: this, dependsOn: [txt, ...args.gateAfter] });
        this.registerOutputs({});
    }
}
