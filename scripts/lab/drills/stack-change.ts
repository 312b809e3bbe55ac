// A change to the lab's stack file as the next `pulumi up` would take it: the program evaluated
// under the mock runtime, as the lab evaluates it (program.ts), reading its last deployment's
// outputs through its own StackReference. Either the program refuses the change (its message,
// and which resources it registered before it stopped) or it accepts it (the evaluation).
import * as pulumi from "@pulumi/pulumi";
import { compareServers, factsFromOutputs, NodeChange } from "../../../components/replacement";
import { evaluateProgram, Evaluation } from "../../lib/mock-program";
import { readStackFile } from "../../lib/stack-file";
import type { StackSource } from "../program";
import { labStack } from "../stack";

/** A node entry of the stack file's `vps-ha:nodes`, as a drill edits it. */
export interface NodeEntry {
    name: string;
    provider: string;
    region: string;
    size?: string;
    [key: string]: unknown;
}
export type NodeLists = Record<string, NodeEntry[]>;

export type StackChange =
    | { accepted: true; evaluation: Evaluation; changes: NodeChange[] }
    | { accepted: false; message: string; registered: string[] };

/** The stack file the lab was brought up from. */
export function labSource(): StackSource {
    const source = labStack()?.source;
    if (!source) throw new Error("lab: the saved stack names no stack file (is the lab up?)");
    return source;
}

/** The node lists of the lab's stack file, to edit. */
export function labNodeLists(source: StackSource): NodeLists {
    const raw = readStackFile(source.file).values["vps-ha:nodes"];
    if (!raw) throw new Error(`lab: ${source.file} has no vps-ha:nodes`);
    return JSON.parse(raw) as NodeLists;
}

/**
 * The program on the lab's stack file with `nodes` in place of its node lists (none: as it is),
 * after a deployment whose outputs were `deployed` (none: the first deployment).
 */
export async function applyToProgram(source: StackSource, nodes: NodeLists | undefined, deployed: Record<string, unknown> | undefined): Promise<StackChange> {
    const file = readStackFile(source.file);
    const values = { ...file.values, ...(nodes ? { "vps-ha:nodes": JSON.stringify(nodes) } : {}) };
    const registered: string[] = [];
    // A program that stops with a RunError also leaves the mock runtime's copies of it unhandled;
    // the refusal is taken from the evaluation itself, so those are let go (anything else is not).
    const swallow = (reason: unknown) => {
        if (!pulumi.RunError.isInstance(reason as Error)) throw reason;
    };
    process.on("unhandledRejection", swallow);
    let refused = false;
    try {
        const evaluation = await evaluateProgram({
            stack: source.stack, values, secretKeys: file.secretKeys, env: {}, ...(deployed ? { deployed } : {}), onResource: (r) => registered.push(r.type),
        });
        const after = factsFromOutputs(evaluation.outputs);
        if (!after) throw new Error("lab: the program exported no serverFacts");
        return { accepted: true, evaluation, changes: compareServers(factsFromOutputs(deployed), after) };
    } catch (e) {
        if (!pulumi.RunError.isInstance(e as Error)) throw e;
        refused = true;
        return { accepted: false, message: (e as Error).message, registered };
    } finally {
        // Only a refusal leaves copies behind; they surface within a second.
        if (refused) await new Promise((r) => setTimeout(r, 1_000));
        process.off("unhandledRejection", swallow);
    }
}

/** The program's accepted evaluation, or an error with its refusal. */
export function accepted(change: StackChange, what: string): { evaluation: Evaluation; changes: NodeChange[] } {
    if (!change.accepted) throw new Error(`the program refused ${what}: ${change.message}`);
    return change;
}
