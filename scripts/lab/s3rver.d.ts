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
    export default class S3rver {
        constructor(options: S3rverOptions);
        run(): Promise<Server>;
        close(): Promise<void>;
    }
}

declare module "s3rver/lib/models/account" {
    export const DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
}
