// The parts of s3rver (an S3-speaking server, used by the lab to play Cloudflare R2) the lab uses.
declare module "s3rver" {
    import type { Server } from "node:net";
    interface S3rverOptions {
        address?: string;
        port?: number;
        directory: string;
        silent?: boolean;
        key?: Buffer | string;
        cert?: Buffer | string;
        configureBuckets?: { name: string }[];
        vhostBuckets?: boolean;
    }
    /** The part of Koa's context the lab's own middleware uses. */
    interface S3rverContext {
        method: string;
        originalUrl: string;
        headers: Record<string, string | string[] | undefined>;
        status: number;
        type: string;
        body: unknown;
    }
    export default class S3rver {
        constructor(options: S3rverOptions);
        /** Koa's middleware list (s3rver is a Koa application): the lab puts its check first. */
        middleware: ((ctx: S3rverContext, next: () => Promise<void>) => Promise<void>)[];
        run(): Promise<Server>;
        close(): Promise<void>;
    }
}

declare module "s3rver/lib/models/account" {
    export const DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
}
