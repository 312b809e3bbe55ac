// The stack's member guard: one protected resource that waits for every database member's and the
// witness's server. `pulumi destroy` tries it before their servers (it depends on them) and stops
// there, so no member's server or disk goes by accident; a member removed from the stack file, or
// moved to another provider, is no longer one of its dependencies and goes in that one run (a
// resource protected itself would need a run to lift it first: Pulumi's engine checks the deployed
// flag). The program's own check (components/replacement.ts) keeps each run to one member down.
import * as pulumi from "@pulumi/pulumi";

export interface MemberGuardArgs {
    /** The members' nodes (database members and the witness): the guard depends on each. */
    members: pulumi.Resource[];
}

export class MemberGuard extends pulumi.ComponentResource {
    constructor(name: string, args: MemberGuardArgs, opts?: pulumi.ComponentResourceOptions) {
        // dependsOn only, no input from them: a member's replacement never replaces the guard.
        super("vps-ha:index:MemberGuard", name, {}, { ...opts, protect: true, dependsOn: args.members });
        this.registerOutputs({});
    }
}
