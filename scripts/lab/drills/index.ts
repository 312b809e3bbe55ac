// Every drill the lab knows, by name.
import { backupRestore } from "./backup";
import { dbPrimaryIsolate, dbPrimaryKill, dbReplicaKill, dbSwitchover, etcdMemberKill, providerLoss } from "./db";
import { nodeIsolate, nodeKill } from "./node-faults";
import { releaseRollback, releaseSwitch } from "./release";
import { dbMemberReplace } from "./replace";
import { Drill } from "./types";
import { appNodeKill, haproxyKill } from "./web";

export const drills: Drill[] = [nodeKill, nodeIsolate, appNodeKill, haproxyKill, dbPrimaryKill, dbPrimaryIsolate, dbReplicaKill, etcdMemberKill, providerLoss, dbMemberReplace, dbSwitchover, backupRestore, releaseSwitch, releaseRollback];

export function findDrill(name: string): Drill {
    const d = drills.find((x) => x.name === name);
    if (!d) throw new Error(`no drill "${name}"; drills: ${drills.map((x) => x.name).join(", ")}`);
    return d;
}
