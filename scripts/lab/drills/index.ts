// Every drill the lab knows, by name.
import { alerts, monitoringLoss, restoreCheck } from "./monitoring";
import { appCompromise } from "./app-compromise";
import { archiveOutage } from "./archive";
import { backupRestore } from "./backup";
import { clusterLoss } from "./cluster-loss";
import { dbPrimaryIsolate, dbPrimaryKill, dbReplicaKill, dbSwitchover, etcdMemberKill, providerLoss, providerLossMajority } from "./db";
import { etcdUnauthenticated } from "./etcd-auth";
import { doubleChangeRefused, memberMove } from "./members";
import { nodeIsolate, nodeKill } from "./node-faults";
import { switchoverInterrupted } from "./pooler";
import { releaseRollback, releaseSwitch } from "./release";
import { dbMemberReplace } from "./replace";
import { rolloutDrills } from "./rollout";
import { rotateSecrets } from "./rotate-secrets";
import { labStack } from "../stack";
import { labNodes } from "../realize";
import { Drill } from "./types";
import { appNodeKill, haproxyKill } from "./web";
import { addWitnessLive, removeWitnessLive } from "./witness-live";

/**
 * Changes to a live stack, run last and in their own lab (test/lab/members.test.ts): desired
 * state rolled out node by node first (the secrets rotated: the lab runs the rotated stack file
 * from then on), then the member changes (the move leaves a member on
 * another provider than the stack file says, and the cluster's loss leaves it restored from its
 * backups), then a witness added (the lab keeps it).
 */
export const liveChangeDrills: Drill[] = [...rolloutDrills, rotateSecrets, doubleChangeRefused, memberMove, clusterLoss, addWitnessLive, removeWitnessLive];

/**
 * The monitoring's drills, measured at the lab's alert receiver. First, as `alerts` checks that
 * nothing was sent between bring-up and itself (the other drills' faults raise real alerts).
 */
export const monitoringDrills: Drill[] = [alerts, restoreCheck, monitoringLoss];

export const drills: Drill[] = [...monitoringDrills, appCompromise, nodeKill, nodeIsolate, appNodeKill, haproxyKill, dbPrimaryKill, dbPrimaryIsolate, dbReplicaKill, etcdMemberKill, etcdUnauthenticated, providerLoss, providerLossMajority, dbMemberReplace, dbSwitchover, switchoverInterrupted, backupRestore, archiveOutage, releaseSwitch, releaseRollback, ...liveChangeDrills];

export function findDrill(name: string): Drill {
    const d = drills.find((x) => x.name === name);
    if (!d) throw new Error(`no drill "${name}"; drills: ${drills.map((x) => x.name).join(", ")}`);
    return d;
}

/**
 * Why `drill` would measure nothing on a stack whose nodes have these roles (undefined: it
 * applies). A drill that needs a witness says so rather than pretend on a stack without one.
 */
export function whyNotApplicable(drill: Drill, stack: string, roles: string[]): string | undefined {
    if (drill.needs && !roles.includes(drill.needs)) return `the ${stack} stack has no ${drill.needs}`;
    if (drill.lacks && roles.includes(drill.lacks)) return `the ${stack} stack has a ${drill.lacks} already`;
    return undefined;
}

/** The same, for the lab that is up now. */
export function whyNotApplicableHere(drill: Drill): string | undefined {
    return whyNotApplicable(drill, labStack()?.source?.stack ?? "lab", labNodes().map((n) => n.role));
}
