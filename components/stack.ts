// The whole program: config in, one environment out. index.ts runs it under the Pulumi engine;
// the offline plan, the lab and the tests run the very same function under the mock runtime.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { AppTier } from "./app";
import { AppRelease } from "./app-release";
import { BackupBucket } from "./backup-bucket";
import { bootstrapDigest } from "./bootstrap-identity";
import { ConfigError, parseStackConfig } from "./config";
import { DatabaseCluster } from "./database";
import { CloudflareFrontDoor } from "./front-door";
import { HaproxyPair, ROLLOUT_TOKEN_LENGTH } from "./haproxy";
import { Mesh } from "./mesh";
import { MeshDirectory } from "./mesh-directory";
import { directoryRemoval, PublishedIndex, publishedIndexFromOutput } from "./directory-removal";
import { memberSetDigest } from "./directory-records";
import { SharedDesiredState } from "./desired-state";
import { sharedChunksFor } from "./desired-state-records";
import { packageFiles } from "./render/python-lib";
import { NodeGroupArgs } from "./node-group";
import { NodeRecords } from "./node-records";
import { OriginCertificate } from "./origin-certificate";
import { OriginPullCertificate } from "./origin-pull-certificate";
import { FailureRow } from "./failures";
import { buildPlan, nodesDomain, PlannedNode, StackPlan } from "./plan";
import { adapters, ServerFactory, ServerLifecycle } from "./providers";
import { catalogs } from "./providers/catalogs";
import { MemberGuard } from "./member-guard";
import { VpsNode } from "./node";
import { compareServers, factsFromOutputs, replacementProblems, ServerFacts, serverLifecycle, standDownOf } from "./replacement";
import { RolloutWait } from "./rollout-wait";
import { STATUS_VIEW_PATH } from "./render/rollout-view";
import { readRawConfig } from "./runtime-config";
import { ROTATABLE_OUTPUT, rotatableFromOutputs, SECRETS_VERSION_OUTPUT, secretsRotation, secretsVersionFromOutputs, secretsVersionProblems } from "./secrets-version";

export interface NodeOutput {
    name: string;
    role: string;
    provider: string;
    region: string;
    size: string | undefined;
    meshAddress: string;
    dnsName: string;
    /** From the provider's catalog, or the host's own `monthlyUsd` (an `ssh` host). */
    monthlyUsd: number;
    publicIpv4: pulumi.Output<string>;
    publicIpv6: pulumi.Output<string | undefined>;
}

export interface StackOutputs {
    nodes: NodeOutput[];
    /** What the loss of each node, data centre and provider leaves standing. */
    failures: FailureRow[];
    extraCosts: StackPlan["extraCosts"];
    monthlyCostUsd: number;
    /** The application's database URL (secret): both HAProxy nodes, read-write. */
    connectionString: pulumi.Output<string>;
    /** The same for read-only clients, on the replicas' port (secret). */
    readOnlyConnectionString: pulumi.Output<string>;
    /** The primary through the poolers (secret): a planned switchover pauses it, failing nothing. */
    pooledConnectionString: pulumi.Output<string>;
    /** Where visitors reach the app, and the release candidate. */
    hostname: string;
    candidateHostname: string;
    /** Where `npm run status` asks for the stack's health: the HAProxy nodes' status view, through the front door. */
    statusUrl: string;
    /** What that path asks for (secret): the token `pulumi up`'s rollout wait sends too. */
    statusToken: pulumi.Output<string>;
    /** Cloudflare sends it in the cf-webhook-auth header of each alert (secret); only with a webhook. */
    alertWebhookSecret?: pulumi.Output<string>;
    /** What the next `pulumi up` compares the stack file against (components/replacement.ts). */
    serverFacts: pulumi.Output<ServerFacts[]>;
    /** The database secrets' version this run deployed: the next run refuses another (components/secrets-version.ts). */
    [SECRETS_VERSION_OUTPUT]: number;
    /** Always true: this version's members admit every secrets version's logins (secrets-version.ts). */
    [ROTATABLE_OUTPUT]: true;
    /** The index this run published: the next run keeps its removal mark while the member set is the same (components/directory-removal.ts). */
    directoryIndex: PublishedIndex;
}

/** Validates the config and builds the plan, or stops the program with every problem at once. */
export function loadPlan(): StackPlan {
    try {
        return buildPlan(parseStackConfig(readRawConfig(), pulumi.getStack()));
    } catch (e) {
        // RunError ends the program with its message alone: no stack trace for a config mistake.
        if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
        throw e;
    }
}

/** What the last deployment left: its server facts and the index it published; undefined before the first. */
async function deployedState(prefix: string): Promise<{ facts: ServerFacts[] | undefined; index: PublishedIndex | undefined; secretsVersion: number | undefined; rotatable: boolean }> {
    const self = new pulumi.StackReference(`${prefix}-deployed`, { name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}` });
    const [facts, nodes, index, secretsVersion, rotatable] = await Promise.all(["serverFacts", "nodes", "directoryIndex", SECRETS_VERSION_OUTPUT, ROTATABLE_OUTPUT].map((o) => self.getOutputDetails(o)));
    const value = (d: pulumi.StackReferenceOutputDetails) => d.value ?? d.secretValue;
    try {
        return {
            facts: factsFromOutputs({ ...(value(facts) !== undefined ? { serverFacts: value(facts) } : {}), ...(value(nodes) !== undefined ? { nodes: value(nodes) } : {}) }),
            index: publishedIndexFromOutput(value(index)),
            secretsVersion: secretsVersionFromOutputs({ [SECRETS_VERSION_OUTPUT]: value(secretsVersion) }),
            rotatable: rotatableFromOutputs({ [ROTATABLE_OUTPUT]: value(rotatable) }),
        };
    } catch (e) {
        throw new pulumi.RunError(`cannot compare with the deployed stack: ${(e as Error).message}`);
    }
}

/** The facts this stack file gives, as far as they are known before anything is created (the server ids aside). */
function plannedFacts(plan: StackPlan): ServerFacts[] {
    return plan.nodes.map((n) => factsOf(plan, n));
}

/** No server resource is protected itself any more: the member guard is (components/member-guard.ts). */
function factsOf(plan: StackPlan, n: PlannedNode): ServerFacts {
    const image = catalogs[n.provider]?.image;
    return {
        name: n.name, role: n.role, provider: n.provider, region: n.region, protected: false,
        ...(n.size ? { size: n.size } : {}), ...(n.host ? { host: n.host.address } : {}), ...(image ? { image } : {}),
        bootstrapDigest: bootstrapDigest(plan, n),
    };
}

/**
 * Compares the stack file with the deployed stack and stops, before anything is created, when
 * the change would take more than one member down (or one of `otherProblems` stands); otherwise
 * decides each server's options for this run and which old servers stand down first.
 */
function serverChanges(plan: StackPlan, deployed: ServerFacts[] | undefined, otherProblems: string[]): { lifecycles: Record<string, ServerLifecycle>; standDowns: Record<string, { provider: string; serverId: string }> } {
    const changes = compareServers(deployed, plannedFacts(plan));
    const problems = [...replacementProblems(changes, deployed), ...otherProblems];
    if (problems.length > 0) throw new pulumi.RunError(`The stack file cannot be applied in one pulumi up:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    const change = (n: PlannedNode) => changes.find((c) => c.name === n.name);
    return {
        lifecycles: Object.fromEntries(plan.nodes.map((n) => [n.name, serverLifecycle(n.role, change(n))])),
        standDowns: Object.fromEntries(plan.nodes.flatMap((n) => {
            const from = standDownOf(change(n));
            return from ? [[n.name, from]] : [];
        })),
    };
}

export async function vpsHa(): Promise<StackOutputs> {
    const plan = loadPlan();
    const prefix = `${pulumi.getProject()}-${plan.config.stack}`;
    const deployed = await deployedState(prefix);
    const { lifecycles, standDowns } = serverChanges(plan, deployed.facts, secretsVersionProblems(deployed.secretsVersion, plan.config.database.secretsVersion, deployed.rotatable));
    const rotation = secretsRotation(deployed.secretsVersion, plan.config.database.secretsVersion);
    const shared = new pulumi.ComponentResource("vps-ha:index:Providers", prefix);
    const servers: Record<string, ServerFactory> = {};
    for (const provider of new Set(plan.nodes.map((n) => n.provider))) {
        servers[provider] = await adapters[provider].init({ prefix, sshPublicKeys: plan.config.admin.sshPublicKeys, parent: shared });
    }
    const config = new pulumi.Config();
    const sshPrivateKey = plan.nodes.some((n) => n.host) ? config.requireSecret("sshPrivateKey") : undefined;

    const mesh = new Mesh("mesh", { plan });
    const removal = directoryRemoval(deployed.facts, plan.nodes.map((n) => n.name), plan.config.directory.allowLargeRemoval, deployed.index);
    const directory = new MeshDirectory("directory", { plan, wireguardKeys: mesh.publicKeys, deliberateRemoval: removal.deliberate });
    const sharedFiles = packageFiles().map((f) => ({ path: f.path, mode: f.permissions ?? "0644", owner: f.owner ?? "root:root", content: f.content }));
    const sharedDesired = new SharedDesiredState("desired-shared", {
        stack: plan.config.stack,
        nodesDomain: nodesDomain(plan.config),
        zoneId: plan.config.cloudflare.zoneId,
        signingKey: directory.signingKey,
        files: sharedFiles,
        chunks: sharedChunksFor(plan.config.stack, sharedFiles),
    });
    const groupArgs: NodeGroupArgs = { plan, mesh, directory, shared: sharedDesired, servers, sshPrivateKey, lifecycles, standDowns, ...(rotation ? { rotation } : {}) };
    const database = new DatabaseCluster("database", groupArgs);
    const origin = new OriginCertificate("origin-cert", { plan });
    const originPull = new OriginPullCertificate("origin-pull", { plan });
    // What HAProxy asks `pulumi up`'s rollout wait and `npm run status` for: only the HAProxy nodes (and the state) hold it.
    const rolloutToken = new random.RandomPassword("rollout-token", { length: ROLLOUT_TOKEN_LENGTH, special: false }).result;
    const proxies = new HaproxyPair("haproxy", { ...groupArgs, originPem: origin.pem, originPullCa: originPull.certificatePem, pooler: database.poolerSecrets, rolloutToken });
    const apps = new AppTier("app", { ...groupArgs, databaseUrl: database.connectionString, pooledDatabaseUrl: database.pooledConnectionString });
    const all = [...database.nodes, ...proxies.nodes, ...apps.nodes];
    new MemberGuard(`${prefix}-members`, { members: database.nodes });
    new NodeRecords("node-records", { plan, nodes: all });
    const frontDoor = new CloudflareFrontDoor("front-door", { plan, origins: proxies.nodes });
    const release = new AppRelease("release", { plan, signingKey: directory.signingKey, gateAfter: [...all, frontDoor] });
    new RolloutWait("rollout", { plan, desired: { ...database.desired, ...proxies.desired, ...apps.desired }, token: rolloutToken, after: [release.gate] });
    if (plan.config.database.backups && !plan.config.database.backups.endpoint) new BackupBucket("backups", { plan });

    return {
        nodes: plan.nodes.map((n) => {
            const vps = all.find((v) => v.name === n.name);
            if (!vps) throw new Error(`no server was created for planned node ${n.name}`);
            return {
                name: n.name, role: n.role, provider: n.provider, region: n.region, size: n.size,
                meshAddress: n.meshAddress, dnsName: n.dnsName, monthlyUsd: n.monthlyUsd, publicIpv4: vps.publicIpv4, publicIpv6: vps.publicIpv6,
            };
        }),
        failures: plan.failures,
        extraCosts: plan.extraCosts,
        monthlyCostUsd: plan.monthlyCostUsd,
        connectionString: pulumi.secret(database.connectionString),
        readOnlyConnectionString: pulumi.secret(database.readOnlyConnectionString),
        pooledConnectionString: pulumi.secret(database.pooledConnectionString),
        hostname: frontDoor.hostname,
        candidateHostname: frontDoor.candidateHostname,
        statusUrl: `https://${frontDoor.hostname}${STATUS_VIEW_PATH}`,
        statusToken: pulumi.secret(rolloutToken),
        ...(frontDoor.webhookSecret ? { alertWebhookSecret: pulumi.secret(frontDoor.webhookSecret) } : {}),
        [SECRETS_VERSION_OUTPUT]: plan.config.database.secretsVersion,
        [ROTATABLE_OUTPUT]: true,
        directoryIndex: { set: memberSetDigest(plan.nodes.map((n) => n.name)), deliberate: removal.deliberate },
        serverFacts: pulumi.all(plan.nodes.map((n) => (all.find((v) => v.name === n.name) as VpsNode).serverId.apply((serverId): ServerFacts => ({ ...factsOf(plan, n), serverId })))),
    };
}
