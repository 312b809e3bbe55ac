// How long the lab's machine itself stood still: CPU time its hypervisor gave to someone else
// (steal, /proc/stat) and time every task waited on storage (IO pressure "full", /proc/pressure/io).
// A failover timed while the whole machine was frozen measures the machine, not the stack; the
// drills report it so that such a run is told apart from a slow failover. A steady few percent of
// steal slows nothing that waits on timers, so only stretches where most of the CPU was taken
// (or every task waited on IO) count.
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";

/** Linux reports /proc/stat in USER_HZ ticks, 100 per second on every architecture Debian builds. */
const TICKS_PER_SECOND = 100;
/** How often the watch samples, and the share of a stretch that must be lost for it to count. */
const SAMPLE_MS = 500;
const FROZEN_SHARE = 0.5;

export interface HostSample {
    /** Milliseconds, Date.now(). */
    at: number;
    stealTicks: number;
    /** Microseconds during which every non-idle task was stalled on IO (0 without PSI). */
    ioFullMicros: number;
}

export interface HostStall {
    /** Wall-clock seconds of stretches in which the hypervisor took most of every core. */
    stolenSeconds: number;
    /** Wall-clock seconds of stretches in which every task mostly waited on IO. */
    ioStalledSeconds: number;
    /** The two together: how much longer anything timed across the window may have taken. */
    seconds: number;
}

/** steal is the eighth value of the aggregate "cpu" line. */
export function parseStealTicks(procStat: string): number {
    const fields = (procStat.split("\n").find((l) => l.startsWith("cpu ")) ?? "").trim().split(/\s+/);
    return Number(fields[8] ?? 0) || 0;
}

export function parseIoFullMicros(pressure: string): number {
    const m = /^full .*total=(\d+)/m.exec(pressure);
    return m ? Number(m[1]) : 0;
}

export function sampleHost(at = Date.now()): HostSample {
    const io = "/proc/pressure/io";
    return {
        at,
        stealTicks: parseStealTicks(readFileSync("/proc/stat", "utf8")),
        ioFullMicros: existsSync(io) ? parseIoFullMicros(readFileSync(io, "utf8")) : 0,
    };
}

/** The frozen stretches between consecutive samples, added up. */
export function frozenTime(samples: HostSample[], cores = cpus().length): HostStall {
    let stolenSeconds = 0;
    let ioStalledSeconds = 0;
    for (let i = 1; i < samples.length; i++) {
        const [a, b] = [samples[i - 1], samples[i]];
        const span = (b.at - a.at) / 1000;
        if (span <= 0) continue;
        // Per core: both cores stolen for a second is one second the lab could not run.
        const stolen = Math.max(0, b.stealTicks - a.stealTicks) / TICKS_PER_SECOND / Math.max(1, cores);
        const io = Math.max(0, b.ioFullMicros - a.ioFullMicros) / 1e6;
        if (stolen >= FROZEN_SHARE * span) stolenSeconds += Math.min(stolen, span);
        if (io >= FROZEN_SHARE * span) ioStalledSeconds += Math.min(io, span);
    }
    return { stolenSeconds, ioStalledSeconds, seconds: Math.min(stolenSeconds + ioStalledSeconds, samples.length ? (samples[samples.length - 1].at - samples[0].at) / 1000 : 0) };
}

/** Samples the machine every half second until stopped (bounded by `maxSeconds`). */
export class HostStallWatch {
    private readonly samples: HostSample[] = [sampleHost()];
    private readonly timer: NodeJS.Timeout;

    constructor(maxSeconds: number) {
        const limit = Math.ceil((maxSeconds * 1000) / SAMPLE_MS);
        this.timer = setInterval(() => {
            this.samples.push(sampleHost());
            if (this.samples.length > limit) clearInterval(this.timer);
        }, SAMPLE_MS);
        this.timer.unref();
    }

    stop(): HostStall {
        clearInterval(this.timer);
        this.samples.push(sampleHost());
        return frozenTime(this.samples);
    }
}
