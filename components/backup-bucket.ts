// The R2 bucket that backups go to, when the stack names no other S3 endpoint. Its S3 credentials
// stay stack-config secrets: R2's S3 key pair is an API token (key id = the token's id, secret =
// the SHA-256 of its value), and minting one here would need a deploy token allowed to create
// tokens of any scope, a wider power than anything else in the stack needs. A token made by hand
// is the smaller risk; since one limited to this bucket cannot exist before the bucket does, the
// first run takes one for the account's buckets (README: Deploying for real).
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { backupBucketName } from "./config";
import { StackPlan } from "./plan";

export interface BackupBucketArgs {
    plan: StackPlan;
}

export class BackupBucket extends pulumi.ComponentResource {
    readonly bucketName: string;

    constructor(name: string, args: BackupBucketArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vps-ha:index:BackupBucket", name, {}, opts);
        const backups = args.plan.config.database.backups;
        if (!backups || backups.endpoint) throw new Error("BackupBucket is for backups to the account's R2 (no endpoint configured)");
        this.bucketName = backupBucketName(args.plan.config) as string;
        new cloudflare.R2Bucket(`${name}-bucket`, {
            accountId: args.plan.config.cloudflare.accountId,
            name: this.bucketName,
            ...(backups.location ? { location: backups.location } : {}),
        }, {
            parent: this,
            // Deleting the bucket would take every backup with it; Pulumi refuses until this is lifted.
            protect: true,
        });
        this.registerOutputs({ bucketName: this.bucketName });
    }
}
