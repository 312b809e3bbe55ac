// `pulumi up` waits for the rollout it started: a local command, run again whenever any node's
// desired-state generation changes, that asks the HAProxy nodes' rollout view through the app's
// hostname until every node applied this run's generation, a node halted, or the bound
// (vps-ha:rollout.waitSeconds) passed; it fails naming the node that halted or those pending.
//
// It runs on a stack's first `pulumi up` as well: after the release gate (HAProxy serving, the
// app nodes up), so its bound covers the rest of first convergence; nodes that do not answer
// yet are pending, never a failure until the bound.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { frontDoorHostnames } from "./config";
import { DesiredState } from "./desired-state";
import { StackPlan } from "./plan";
import { renderRolloutWait, ROLLOUT_TOKEN_ENV } from "./render/rollout-wait";

/** Seconds between the wait's questions: each costs one round of status reads on a HAProxy node. */
const WAIT_EVERY_SECONDS = 5;

export interface RolloutWaitArgs {
    plan: StackPlan;
    /** Every node's published desired state, by node name. */
    desired: Record<string, DesiredState>;
    /** What HAProxy asks for on /vps-ha/rollout (secret). */
    token: pulumi.Input<string>;
    /** What must be done first: the release gate (HAProxy serving, through the front door). */
    after: pulumi.Input<pulumi.Resource>[];
}

/** The wait's script for these generations (pure: tests and the lab run the same). */
export function rolloutWaitScript(plan: StackPlan, want: Record<string, number>): string {
    const names = frontDoorHostnames(plan.config);
    return renderRolloutWait({ hostnames: [names.app, names.candidate], want, timeoutSeconds: plan.config.rollout.waitSeconds, everySeconds: WAIT_EVERY_SECONDS });
}

export class RolloutWait extends pulumi.ComponentResource {
    constructor(name: string, args: RolloutWaitArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:RolloutWait", name, {}, opts);
        const names = Object.keys(args.desired).sort();
        const want = pulumi.all(names.map((n) => args.desired[n].generation)).apply((gs) => Object.fromEntries(names.map((n, i) => [n, gs[i]])) as Record<string, number>);
        // Triggers replace the command, which runs `create` again: exactly when a generation changes.
        new command.local.Command(`${name}-wait`, {
            create: want.apply((w) => rolloutWaitScript(args.plan, w)),
            triggers: [want.apply((w) => JSON.stringify(w))],
            environment: { [ROLLOUT_TOKEN_ENV]: pulumi.secret(args.token) },
        }, { parent: this, dependsOn: [...Object.values(args.desired), ...args.after] });
        this.registerOutputs({});
    }
}
